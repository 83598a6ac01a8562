//! Why a command failed, and its exit status: 1 when ctrackd refused the operation, 2 for
//! usage and connection errors. Every failure is one line on stderr, never a trace.

use std::process::ExitCode;

use tonic::Code;

/// Exit status: the operation failed (ctrackd answered with an error).
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit status: usage error, or ctrackd could not be reached.
pub(crate) const EXIT_USAGE: u8 = 2;

/// A failed command.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad arguments (exit 2).
    Usage(String),
    /// ctrackd could not be reached, or the connection was lost (exit 2).
    Unreachable(String),
    /// ctrackd answered with an error status (exit 1; `UNAVAILABLE` and transport errors
    /// exit 2).
    Status(tonic::Status),
    /// The operation did not succeed for another reason (exit 1).
    Failed(String),
    /// Writing the output failed; a closed pipe (`| head`) ends the command quietly.
    Output(std::io::Error),
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Self {
        Self::Status(s)
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Self::Output(e)
    }
}

/// The canonical name of a gRPC status code (`NOT_FOUND`).
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// One line: newlines and runs of blanks become single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// I/O error kinds named in plain words.
const IO_KINDS: [(std::io::ErrorKind, &str); 6] = [
    (std::io::ErrorKind::ConnectionRefused, "connection refused"),
    (std::io::ErrorKind::ConnectionReset, "connection reset"),
    (std::io::ErrorKind::NotFound, "no such file or directory"),
    (std::io::ErrorKind::PermissionDenied, "permission denied"),
    (std::io::ErrorKind::TimedOut, "timed out"),
    (
        std::io::ErrorKind::AddrNotAvailable,
        "address not available",
    ),
];

/// A short reason from an error and its sources: the innermost I/O error by kind
/// (`connection refused`), else the innermost message.
pub(crate) fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = e.to_string();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut io: Option<&std::io::Error> = None;
    while let Some(err) = current {
        if let Some(i) = err.downcast_ref::<std::io::Error>() {
            io = Some(i);
        }
        let text = err.to_string();
        if !text.is_empty() {
            innermost = text;
        }
        current = err.source();
    }
    if let Some(io) = io {
        if let Some((_, text)) = IO_KINDS.iter().find(|(k, _)| *k == io.kind()) {
            return (*text).to_owned();
        }
        innermost = io.to_string();
    }
    clean(&innermost)
}

/// Whether `describe` named an I/O error kind (refused, reset, ...): no hint helps then.
fn is_io_kind(reason: &str) -> bool {
    IO_KINDS.iter().any(|(_, text)| *text == reason)
}

/// Drops `(os error N)` and lowercases the first letter: `Network is unreachable (os error
/// 101)` becomes `network is unreachable`.
fn clean(text: &str) -> String {
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) if !chars.as_str().starts_with(|c: char| c.is_ascii_uppercase()) => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => text.to_owned(),
    }
}

impl Failure {
    /// Prints the failure (one line on stderr) and gives the exit status. `server` is the
    /// address as the user gave it.
    /// `hint` is added to protocol errors met after connecting (e.g. plaintext against TLS).
    pub(crate) fn report(self, server: &str, hint: Option<&str>) -> ExitCode {
        let (line, code) = match self {
            Self::Usage(m) => (m, EXIT_USAGE),
            Self::Unreachable(m) => (m, EXIT_USAGE),
            Self::Failed(m) => (m, EXIT_FAILED),
            // UNAVAILABLE, or a status made on this side from a transport error (it has a
            // source): the connection failed, not the operation.
            Self::Status(s)
                if s.code() == Code::Unavailable || std::error::Error::source(&s).is_some() =>
            {
                let reason = match std::error::Error::source(&s) {
                    Some(src) => match (describe(src), hint) {
                        (r, Some(h)) if !is_io_kind(&r) => format!("{r} ({h})"),
                        (r, _) => r,
                    },
                    None => s.message().to_owned(),
                };
                (
                    format!("cannot reach ctrackd at {server}: {reason}"),
                    EXIT_USAGE,
                )
            }
            Self::Status(s) => (
                format!("{}: {}", code_name(s.code()), s.message()),
                EXIT_FAILED,
            ),
            Self::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return ExitCode::SUCCESS;
            }
            Self::Output(e) => (format!("cannot write the output: {e}"), EXIT_FAILED),
        };
        eprintln!("ctrackctl: {}", one_line(&line));
        ExitCode::from(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_described_by_kind() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(describe(&e), "connection refused");
        let e = std::io::Error::other("Network is unreachable (os error 101)");
        assert_eq!(describe(&e), "network is unreachable");
        assert_eq!(clean("TLS handshake failed"), "TLS handshake failed");
        assert_eq!(one_line("a\n  b"), "a b");
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
    }
}
