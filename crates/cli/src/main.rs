//! The `mirrord` binary: one entry point for every user-facing command.
//!
//! Each subcommand lives in its own module; this file only parses the command line and maps
//! outcomes to the documented exit codes (0 success, 1 the command's own failure such as an
//! invalid config, 2 usage or I/O errors).

#![forbid(unsafe_code)]

mod exec_cmd;
mod exit;
mod ide_cmd;
mod intproxy_cmd;
mod ls_cmd;
mod sandbox_cmd;
mod schema_cmd;
mod supervise_cmd;
mod syscall_exec;
mod verify_config_cmd;

use clap::{Parser, Subcommand};

/// Run a local process in the context of a remote target: its files, environment, DNS,
/// outgoing connections and incoming traffic.
#[derive(Debug, Parser)]
#[command(name = "mirrord", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a command in the context of a target: its files, environment, DNS and network.
    Exec(exec_cmd::ExecArgs),
    /// List the targets: the cluster's pods and workloads, or the local sandboxes without a cluster.
    Ls(ls_cmd::LsArgs),
    /// Check a mirrord config file and print every problem with its line and column.
    VerifyConfig(verify_config_cmd::VerifyConfigArgs),
    /// Print the JSON Schema of the mirrord config file (for editors and validators).
    Schema(schema_cmd::SchemaArgs),
    /// Manage the built-in sandbox pods: local targets made of network and mount namespaces.
    Sandbox(sandbox_cmd::SandboxArgs),
    /// The IDE sidecar: an LSP server on stdin/stdout for the editor plugins.
    Ide(ide_cmd::IdeArgs),
    /// The per-session internal proxy (started by `mirrord exec`).
    #[command(hide = true)]
    Intproxy(intproxy_cmd::IntproxyArgs),
    /// Runs a program on the system-call path in the session its environment names (the IDE's
    /// Go launches run `dlv` through it).
    #[command(hide = true)]
    Supervise(supervise_cmd::SuperviseArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Exec(args) => exec_cmd::run(args),
        Command::Intproxy(args) => intproxy_cmd::run(args),
        Command::Ide(args) => ide_cmd::run(args),
        Command::Ls(args) => ls_cmd::run(args),
        Command::VerifyConfig(args) => verify_config_cmd::run(args),
        Command::Schema(args) => schema_cmd::run(args),
        Command::Sandbox(args) => sandbox_cmd::run(args),
        Command::Supervise(args) => supervise_cmd::run(args),
    };
    outcome.into()
}
