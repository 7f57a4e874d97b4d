//! The sla service's errors: the shared service error type.

pub use lots_platform::api::{ApiError as Error, ApiResult as Result};
