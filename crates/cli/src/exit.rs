//! The documented exit codes of every `mirrord` command and how errors are reported.

use std::process::ExitCode;

/// What a command ended with; converted to the process exit code in `main`.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Exit code 0.
    Success,
    /// Exit code 1: the command ran and found a problem (an invalid config, a failed session).
    Failure,
    /// Exit code 2: bad usage or an I/O error; the message has already been printed.
    UsageOrIo,
    /// A specific exit code (127: the command to run was not found).
    Exit(u8),
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Failure => ExitCode::from(1),
            Outcome::UsageOrIo => ExitCode::from(2),
            Outcome::Exit(code) => ExitCode::from(code),
        }
    }
}

/// Prints one error line, with optional help text the user can act on, to stderr.
#[allow(
    clippy::print_stderr,
    reason = "the CLI reports errors to the user on stderr"
)]
pub(crate) fn report_error(message: &str, help: Option<&str>) {
    eprintln!("error: {message}");
    if let Some(help) = help {
        eprintln!("  help: {help}");
    }
}
