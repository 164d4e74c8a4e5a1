//! `mirrord exec`: run a command in the context of a target.
//!
//! Resolves the config (flags > environment > file > defaults), starts the session (agent and
//! intproxy), fetches the target's environment, and replaces itself with the command, which runs
//! with the layer preloaded. Progress goes to stderr: a live line on a terminal, plain lines
//! otherwise.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Instant;

use mirrord_config::{Overrides, discover};

use crate::exit::{Outcome, report_error};
use mirrord_session as session;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  mirrord exec --target sandbox/demo -- python3 app.py\n  mirrord exec --target pid/4242 --fs-mode write -- ./server\n\nExit status: the command's own, or 1 when the session cannot start, 2 on bad usage, 127 when the command cannot be run."
)]
pub(crate) struct ExecArgs {
    /// The target: `pod/NAME`, `deployment/NAME`, `pid/PID`, `sandbox/NAME`, `targetless`, …
    #[arg(short = 't', long)]
    target: Option<String>,
    /// The target's namespace (Kubernetes).
    #[arg(short = 'n', long)]
    target_namespace: Option<String>,
    /// The config file (default: $MIRRORD_CONFIG_FILE, then .mirrord/mirrord.{json,toml,yaml}).
    #[arg(short = 'f', long)]
    config_file: Option<PathBuf>,
    /// File operations mode: local, localwithoverrides, read or write.
    #[arg(long)]
    fs_mode: Option<String>,
    /// Steal incoming traffic instead of mirroring it.
    #[arg(long)]
    steal: bool,
    /// Make outgoing connections locally instead of from the target.
    #[arg(long)]
    no_outgoing: bool,
    /// Resolve names locally instead of through the target.
    #[arg(long)]
    no_remote_dns: bool,
    /// Only these remote environment variables (`;`-separated, `*` and `?` wildcards).
    #[arg(short = 's', long = "env-include")]
    env_include: Option<String>,
    /// All remote environment variables but these (`;`-separated, wildcards).
    #[arg(short = 'x', long = "env-exclude")]
    env_exclude: Option<String>,
    /// Processes to leave alone (`;`-separated executable names).
    #[arg(long)]
    skip_processes: Option<String>,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

impl ExecArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            target: self.target.clone(),
            target_namespace: self.target_namespace.clone(),
            fs_mode: self.fs_mode.clone(),
            steal: self.steal.then_some(true),
            env_include: self.env_include.clone(),
            env_exclude: self.env_exclude.clone(),
            skip_processes: self.skip_processes.clone(),
            remote_dns: self.no_remote_dns.then_some(false),
            tcp_outgoing: self.no_outgoing.then_some(false),
            udp_outgoing: self.no_outgoing.then_some(false),
            ..Overrides::default()
        }
    }
}

/// Progress lines on stderr.
struct Progress {
    live: bool,
    started: Instant,
}

impl Progress {
    #[allow(clippy::print_stderr, reason = "progress is for the user, on stderr")]
    fn step(&mut self, step: &str) {
        if self.live {
            eprint!("\r\x1b[2Kmirrord: {step}…");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("mirrord: {step}");
        }
    }

    #[allow(clippy::print_stderr, reason = "progress is for the user, on stderr")]
    fn done(&mut self, summary: &str) {
        let elapsed = self.started.elapsed().as_millis();
        if self.live {
            eprintln!("\r\x1b[2Kmirrord: {summary} ({elapsed} ms)");
        } else {
            eprintln!("mirrord: {summary} ({elapsed} ms)");
        }
    }

    fn clear(&mut self) {
        if self.live {
            eprint_clear();
        }
    }
}

#[allow(clippy::print_stderr, reason = "progress is for the user, on stderr")]
fn eprint_clear() {
    eprint!("\r\x1b[2K");
}

pub(crate) fn run(args: ExecArgs) -> Outcome {
    let mut progress = Progress {
        live: std::io::stderr().is_terminal(),
        started: Instant::now(),
    };
    let (from_env, env_problems) = Overrides::from_env(|name| std::env::var(name).ok());
    if !env_problems.is_empty() {
        for problem in env_problems {
            report_error(&problem.message, None);
        }
        return Outcome::Failure;
    }
    let overrides = from_env.overlaid_by(args.overrides());
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let source = discover::find_config(
        args.config_file.as_deref(),
        std::env::var("MIRRORD_CONFIG_FILE").ok().as_deref(),
        &cwd,
    );
    let (loaded, config_path) = match &source {
        Some(source) => match mirrord_config::load_file(source.path(), &overrides) {
            Ok(loaded) => (loaded, Some(source.path().to_path_buf())),
            Err(error) => {
                let detail = std::error::Error::source(&error)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                report_error(&format!("{error}{detail}"), None);
                return Outcome::UsageOrIo;
            }
        },
        None => (mirrord_config::load_without_file(&overrides), None),
    };
    for diagnostic in &loaded.diagnostics {
        let place = match &config_path {
            Some(path)
                if diagnostic.path.is_empty()
                    || diagnostic.range.start.line > 0
                    || diagnostic.range.start.character > 0 =>
            {
                format!(
                    "{}:{}:{}: ",
                    path.display(),
                    diagnostic.range.start.line + 1,
                    diagnostic.range.start.character + 1
                )
            }
            _ => String::new(),
        };
        // One line per problem, starting with its severity like every other message.
        print_diagnostic(&format!(
            "{}: {place}{}",
            diagnostic.severity, diagnostic.message
        ));
    }
    let Some(config) = loaded.config else {
        // The lines above said what is wrong; nothing was started.
        return Outcome::Failure;
    };
    let layer_path = match session::artifact(
        "libmirrord_layer.so",
        "the layer library (libmirrord_layer.so)",
        "MIRRORD_LAYER_PATH",
    ) {
        Ok(path) => path,
        Err(error) => {
            report_error(&error.to_string(), None);
            return Outcome::Failure;
        }
    };

    let route = match crate::syscall_exec::choose(&args.command[0]) {
        Ok(route) => route,
        Err(message) => {
            report_error(&message, None);
            return Outcome::Failure;
        }
    };

    let session = match session::start(&config, &mut |step| progress.step(step)) {
        Ok(session) => session,
        Err(error) => {
            progress.clear();
            report_error(&error.to_string(), None);
            return Outcome::Failure;
        }
    };
    progress.step("reading the target's environment");
    let remote_env = if config.feature.env.enabled {
        match session::fetch_env(&session, session::env_request(&config)) {
            Ok(vars) => vars,
            Err(error) => {
                progress.clear();
                report_error(
                    &error.to_string(),
                    Some(&format!(
                        "see the logs at {} and {}",
                        session.agent_log.display(),
                        session.intproxy_log.display()
                    )),
                );
                return Outcome::Failure;
            }
        }
    } else {
        Vec::new()
    };
    let environment = match session::user_environment(
        std::env::vars_os(),
        &remote_env,
        &config,
        &session,
        &layer_path,
    ) {
        Ok(environment) => environment,
        Err(error) => {
            progress.clear();
            report_error(&error.to_string(), None);
            return Outcome::Failure;
        }
    };
    let target = match session.target_pid {
        Some(pid) => format!("{} (pid {pid})", config.target),
        None => config.target.to_string(),
    };
    progress.done(&format!("running in the context of {target}"));
    for notice in &session.notices {
        print_diagnostic(&format!("warning: {notice}"));
    }

    let (program, arguments) = args.command.split_first().expect("clap requires a command");
    if let crate::syscall_exec::Route::Syscall {
        program: found,
        reason,
    } = route
    {
        crate::syscall_exec::announce(program, reason);
        return crate::syscall_exec::run(
            found,
            arguments,
            environment,
            &layer_path,
            &config,
            &session,
        );
    }
    let error = std::process::Command::new(program)
        .args(arguments)
        .env_clear()
        .envs(environment)
        .exec();
    report_error(
        &format!("cannot run `{}`: {error}", program.to_string_lossy()),
        Some("check the command's name and that it is on PATH"),
    );
    Outcome::Exit(127)
}

#[allow(
    clippy::print_stderr,
    reason = "config diagnostics are for the user, on stderr"
)]
fn print_diagnostic(line: &str) {
    eprintln!("{line}");
}
