//! Lotsen's pure domain: types and rules with no I/O.

pub mod case;
pub mod ids;
pub mod tenant;

pub use case::{CaseStatus, Channel, Outcome, Reference, TransitionError};
pub use ids::{IdKind, IdentityError, LegalForm, OrgNr};
pub use tenant::{TenantConfig, TenantConfigError};
