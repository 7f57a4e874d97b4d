//! Exit codes scripts can trust, and error messages people can act on.
//!
//! 0 ok; 2 usage or invalid argument (also the server's INVALID_ARGUMENT); 3 not found;
//! 4 refused (FAILED_PRECONDITION, ALREADY_EXISTS, PERMISSION_DENIED); 5 unreachable or
//! unavailable (also DEADLINE_EXCEEDED); 6 not logged in, or the token was refused
//! (UNAUTHENTICATED); 1 other.

use std::fmt::Write as _;
use std::process::ExitCode;

use tonic::Code;
use tonic_types::StatusExt;

/// Exit code: success.
pub const OK: u8 = 0;
/// Exit code: anything not covered below.
pub const OTHER: u8 = 1;
/// Exit code: bad usage or an invalid argument.
pub const USAGE: u8 = 2;
/// Exit code: the case, task, meeting or clock does not exist.
pub const NOT_FOUND: u8 = 3;
/// Exit code: the server refused (wrong state, already exists).
pub const REFUSED: u8 = 4;
/// Exit code: the server cannot be reached or is unavailable.
pub const UNAVAILABLE: u8 = 5;
/// Exit code: no token, or the server did not accept it.
pub const UNAUTHENTICATED: u8 = 6;

/// No usable token: the caller must log in.
#[derive(Debug, thiserror::Error)]
#[error("{0}: run `lots login` (or set LOTS_TOKEN)")]
pub struct NotLoggedIn(pub String);

/// An argument the command line itself rejects before asking any server.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A server that did not answer.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach {service} at {url}")]
pub struct Unreachable {
    pub service: &'static str,
    pub url: String,
    #[source]
    pub source: tonic::transport::Error,
}

/// The exit code for an error, from the first cause that decides it.
pub fn code(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<UsageError>() {
            return USAGE;
        }
        if cause.is::<NotLoggedIn>() {
            return UNAUTHENTICATED;
        }
        if cause.is::<Unreachable>() || cause.is::<tonic::transport::Error>() {
            return UNAVAILABLE;
        }
        if let Some(status) = cause.downcast_ref::<tonic::Status>() {
            return code_for_status(status.code());
        }
    }
    OTHER
}

/// The exit code for a gRPC status code.
pub fn code_for_status(code: Code) -> u8 {
    match code {
        Code::Ok => OK,
        Code::InvalidArgument | Code::OutOfRange => USAGE,
        Code::NotFound => NOT_FOUND,
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted | Code::PermissionDenied => REFUSED,
        Code::Unavailable | Code::DeadlineExceeded => UNAVAILABLE,
        Code::Unauthenticated => UNAUTHENTICATED,
        _ => OTHER,
    }
}

/// The message printed on stderr for an error, ending with a newline.
pub fn report(err: &anyhow::Error) -> String {
    let status = err.chain().find_map(|c| c.downcast_ref::<tonic::Status>());
    let Some(status) = status else {
        if let Some(unreachable) = err.chain().find_map(|c| c.downcast_ref::<Unreachable>()) {
            let root = err.root_cause().to_string();
            return format!(
                "error: {unreachable}: {root}\n  (is it running? `lots dev` starts everything on this machine)\n"
            );
        }
        return format!("error: {err:#}\n");
    };
    let doing = err.to_string();
    let message = status.message().trim();
    let mut out = String::new();
    match status.code() {
        Code::InvalidArgument => {
            let violations = status.get_details_bad_request().map(|b| b.field_violations).unwrap_or_default();
            if violations.is_empty() {
                let _ = writeln!(out, "error: the server refused the request: {message}");
            } else {
                let _ = writeln!(out, "error: the server refused the request:");
                for v in violations {
                    let _ = writeln!(out, "  - {}: {}", v.field, v.description);
                }
            }
        }
        Code::NotFound => {
            let _ = writeln!(out, "error: not found: {message}");
        }
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
            let _ = writeln!(out, "error: refused: {message}");
        }
        Code::Unavailable => {
            let _ = writeln!(out, "error: {doing}: unavailable: {message}");
        }
        Code::Unauthenticated => {
            let _ = writeln!(out, "error: not logged in, or the token was refused: {message}\n  (run `lots login`)");
        }
        Code::PermissionDenied => {
            let _ = writeln!(out, "error: not allowed: {message}");
        }
        code => {
            let _ = writeln!(out, "error: {doing}: {}: {message}", describe(code));
        }
    }
    out
}

fn describe(code: Code) -> &'static str {
    match code {
        Code::Internal => "the server failed",
        Code::DeadlineExceeded => "the server took too long",
        Code::Unimplemented => "the server does not offer this",
        Code::ResourceExhausted => "the server is overloaded",
        Code::Cancelled => "cancelled",
        _ => "failed",
    }
}

/// Turns a command's result into the process exit code, printing the error if any.
pub fn finish(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprint!("{}", report(&err));
            ExitCode::from(code(&err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;
    use tonic_types::{ErrorDetails, FieldViolation};

    fn status_err(status: tonic::Status) -> anyhow::Error {
        Err::<(), _>(status).context("register the case").unwrap_err()
    }

    #[test]
    fn status_codes_map_to_documented_exit_codes() {
        assert_eq!(code_for_status(Code::InvalidArgument), 2);
        assert_eq!(code_for_status(Code::NotFound), 3);
        assert_eq!(code_for_status(Code::FailedPrecondition), 4);
        assert_eq!(code_for_status(Code::AlreadyExists), 4);
        assert_eq!(code_for_status(Code::Unavailable), 5);
        assert_eq!(code_for_status(Code::Internal), 1);
        assert_eq!(code_for_status(Code::Unauthenticated), 6);
        assert_eq!(code_for_status(Code::PermissionDenied), 4);
        assert_eq!(code_for_status(Code::DeadlineExceeded), 5);
    }

    #[test]
    fn the_code_is_found_under_context() {
        assert_eq!(code(&status_err(tonic::Status::not_found("case x"))), 3);
        assert_eq!(code(&status_err(tonic::Status::already_exists("key"))), 4);
        assert_eq!(code(&anyhow::Error::new(UsageError("bad".into()))), 2);
        assert_eq!(code(&anyhow::anyhow!("something else")), 1);
    }

    #[test]
    fn field_violations_are_repeated_in_plain_words() {
        let details = ErrorDetails::with_bad_request(vec![
            FieldViolation::new("company.org_nr", "is not a valid organisationsnummer"),
            FieldViolation::new("case_type", "is not in the catalogue of 0581"),
        ]);
        let status = tonic::Status::with_error_details(Code::InvalidArgument, "summary", details);
        let err = status_err(status);
        assert_eq!(code(&err), 2);
        assert_eq!(
            report(&err),
            "error: the server refused the request:\n  \
             - company.org_nr: is not a valid organisationsnummer\n  \
             - case_type: is not in the catalogue of 0581\n"
        );
    }

    #[test]
    fn other_statuses_read_as_sentences() {
        let err = status_err(tonic::Status::failed_precondition("the case is closed"));
        assert_eq!(report(&err), "error: refused: the case is closed\n");
        let err = status_err(tonic::Status::invalid_argument("reference: bad"));
        assert_eq!(report(&err), "error: the server refused the request: reference: bad\n");
        let err = status_err(tonic::Status::internal("boom"));
        assert_eq!(report(&err), "error: register the case: the server failed: boom\n");
    }

    #[test]
    fn plain_errors_print_their_chain() {
        let err = Err::<(), _>(anyhow::anyhow!("connection refused")).context("start nats-server").unwrap_err();
        assert_eq!(report(&err), "error: start nats-server: connection refused\n");
    }
}
