//! `mirrord intproxy` (hidden): the per-session internal proxy, started by `mirrord exec` and by
//! the IDE sidecar. Prints `MIRRORD_INTPROXY_LISTENING=ADDR` once ready; logs to stderr.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use mirrord_intproxy::{Intproxy, IntproxyOptions};
use mirrord_protocol::token::SessionToken;

use crate::exit::{Outcome, report_error};

use mirrord_session::INTPROXY_TOKEN_ENV as TOKEN_ENV;

#[derive(Debug, clap::Args)]
pub(crate) struct IntproxyArgs {
    /// The agent's address.
    #[arg(long)]
    agent: SocketAddr,
    /// Where to listen for layers.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Seconds to wait for the first layer.
    #[arg(long, default_value_t = 60)]
    start_idle_timeout: u64,
    /// Seconds to stay after the last layer left.
    #[arg(long, default_value_t = 5)]
    idle_timeout: u64,
    /// Log filter (`RUST_LOG` syntax).
    #[arg(long, default_value = "mirrord=info,warn")]
    log_level: String,
}

pub(crate) fn run(args: IntproxyArgs) -> Outcome {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let token: SessionToken = match std::env::var(TOKEN_ENV)
        .ok()
        .and_then(|text| text.trim().parse().ok())
    {
        Some(token) => token,
        None => {
            report_error(
                &format!("${TOKEN_ENV} must hold the session token"),
                Some(
                    "the intproxy is started by `mirrord exec`; it is not meant to be run by hand",
                ),
            );
            return Outcome::UsageOrIo;
        }
    };
    let options = IntproxyOptions {
        agent_addr: args.agent,
        token,
        listen: args.listen,
        start_idle_timeout: Duration::from_secs(args.start_idle_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            report_error(&format!("cannot start the async runtime: {error}"), None);
            return Outcome::Failure;
        }
    };
    runtime.block_on(async move {
        let intproxy = match Intproxy::start(options).await {
            Ok(intproxy) => intproxy,
            Err(error) => {
                let source = std::error::Error::source(&error)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                report_error(&format!("{error}{source}"), None);
                return Outcome::Failure;
            }
        };
        match intproxy.local_addr().and_then(announce) {
            Ok(()) => {}
            Err(error) => {
                report_error(
                    &format!("cannot announce the intproxy's address: {error}"),
                    None,
                );
                return Outcome::Failure;
            }
        }
        intproxy.serve().await;
        Outcome::Success
    })
}

#[allow(clippy::print_stdout, reason = "the one line `mirrord exec` reads")]
fn announce(address: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "MIRRORD_INTPROXY_LISTENING={address}")?;
    stdout.flush()
}
