//! `mirrord ide`: the IDE sidecar. Speaks LSP (JSON-RPC 2.0) on stdin/stdout for the editor
//! plugins (see `crates/ide` and `docs/ide-protocol.md`). stdout carries only protocol; logs go
//! to stderr, or to `--log-file`.

use std::path::PathBuf;

use crate::exit::{Outcome, report_error};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Started by the editor plugins; speaks LSP on stdin/stdout until the editor exits or closes stdin, then ends the sessions it started.\n\nExit status: 0 after a normal exit, 2 when stdin/stdout cannot be used or the log file cannot be opened."
)]
pub(crate) struct IdeArgs {
    /// Write logs to this file instead of stderr.
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, env = "MIRRORD_IDE_LOG", default_value = "mirrord=info,warn")]
    log_level: String,
    /// Accepted for compatibility with clients that always pass it (stdio is the only transport).
    #[arg(long, hide = true)]
    stdio: bool,
}

pub(crate) fn run(args: IdeArgs) -> Outcome {
    let options = mirrord_logging::LogOptions::new(&args.log_level, "warn");
    let target = match &args.log_file {
        Some(path) => {
            let file = match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                Ok(file) => file,
                Err(error) => {
                    report_error(
                        &format!("cannot open the log file {}: {error}", path.display()),
                        None,
                    );
                    return Outcome::UsageOrIo;
                }
            };
            mirrord_logging::LogTarget::File(file)
        }
        None => mirrord_logging::LogTarget::Stderr,
    };
    mirrord_logging::init(&options, target);
    match mirrord_ide::run_stdio() {
        Ok(()) => Outcome::Success,
        Err(error) => {
            report_error(&format!("the IDE sidecar failed: {error}"), None);
            Outcome::UsageOrIo
        }
    }
}
