//! Lotsen's pure domain: types and rules with no I/O.

pub mod calendar;
pub mod case;
pub mod company_key;
pub mod complaint;
pub mod guarantee;
pub mod ical;
pub mod ids;
pub mod insight;
pub mod slots;
pub mod tenant;

pub use case::{CaseStatus, Channel, Outcome, Reference, TransitionError};
pub use company_key::CompanyKeys;
pub use complaint::{ComplaintCategory, ComplaintStatus, SeriesReference, VisitKind};
pub use ids::{IdKind, IdentityError, LegalForm, OrgNr};
pub use tenant::{TenantConfig, TenantConfigError};
