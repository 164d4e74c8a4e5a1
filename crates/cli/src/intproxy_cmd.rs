//! `mirrord intproxy` (hidden): the per-session internal proxy, started by `mirrord exec` and by
//! the IDE sidecar. Prints `MIRRORD_INTPROXY_LISTENING=ADDR` once ready; logs to stderr.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use mirrord_intproxy::{Intproxy, IntproxyOptions};
use mirrord_protocol::token::SessionToken;

use crate::exit::{Outcome, report_error};

use mirrord_session::INTPROXY_TOKEN_ENV as TOKEN_ENV;

/// How often the intproxy sends a heartbeat to an agent it reaches through a port-forward (the
/// agent gives up on a client that falls silent after heartbeats: see `agent/src/session.rs`).
const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, clap::Args)]
pub(crate) struct IntproxyArgs {
    /// The agent's address.
    #[arg(long, required_unless_present = "agent_pod")]
    agent: Option<SocketAddr>,
    /// Reach the agent through a Kubernetes port-forward to `NAMESPACE/POD:PORT` instead (the
    /// cluster settings come from `$MIRRORD_KUBE_SETTINGS`).
    #[arg(long, conflicts_with = "agent")]
    agent_pod: Option<mirrord_kube::AgentPod>,
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
    /// Write logs as JSON lines (`internal_proxy.json_log`).
    #[arg(long)]
    json_log: bool,
}

pub(crate) fn run(args: IntproxyArgs) -> Outcome {
    mirrord_logging::init(
        &mirrord_logging::LogOptions::new(&args.log_level, "info").json(args.json_log),
        mirrord_logging::LogTarget::Stderr,
    );
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
        agent_addr: args
            .agent
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
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
        let started = match &args.agent_pod {
            Some(agent_pod) => match port_forward_link(agent_pod, options.token.clone()).await {
                Ok(link) => {
                    // So that the agent notices at once when this process is killed (and undoes
                    // a copied target), though the port-forward's far end stays open.
                    link.start_heartbeat(HEARTBEAT_INTERVAL);
                    Intproxy::start_with_link(options, link).await
                }
                Err(message) => {
                    report_error(&message, None);
                    announce_failure(&format!("the port-forward to the agent failed: {message}"));
                    return Outcome::Failure;
                }
            },
            None => Intproxy::start(options).await,
        };
        let intproxy = match started {
            Ok(intproxy) => intproxy,
            Err(error) => {
                let source = std::error::Error::source(&error)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                report_error(&format!("{error}{source}"), None);
                announce_failure(&format!("{error}{source}"));
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
        // The session ends with the intproxy: after the last layer left (however the user's
        // process ended, `kill -9` included), or on SIGTERM. Then a copied target is undone.
        let copy = mirrord_kube::CopySession::from_env();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    () = intproxy.serve() => {}
                    _ = terminate.recv() => tracing::info!("terminated"),
                }
            }
            Err(_) => intproxy.serve().await,
        }
        if let Some(copy) = copy {
            end_copy_session(&copy).await;
        }
        Outcome::Success
    })
}

/// Undoes `feature.copy_target` at the end of the session: the workload's replicas back, the
/// copy deleted (see `mirrord_kube::end_copy`).
async fn end_copy_session(copy: &mirrord_kube::CopySession) {
    let settings = mirrord_kube::KubeSettings::from_env().unwrap_or_default();
    match mirrord_kube::Cluster::connect(&settings).await {
        Ok(cluster) => mirrord_kube::end_copy(&cluster, copy).await,
        Err(error) => {
            tracing::warn!(%error, pod = %copy.copy_pod, "cannot reach the cluster to undo the copy of the target")
        }
    }
}

/// Opens the agent link through a port-forward, retrying while the agent is still coming up.
async fn port_forward_link(
    agent_pod: &mirrord_kube::AgentPod,
    token: SessionToken,
) -> Result<std::sync::Arc<mirrord_intproxy::AgentLink>, String> {
    let settings = mirrord_kube::KubeSettings::from_env().unwrap_or_default();
    let cluster = mirrord_kube::Cluster::connect(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let peer = format!("port-forward to {agent_pod}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = match mirrord_kube::connect_agent(&cluster, agent_pod).await {
            Ok(stream) => mirrord_intproxy::AgentLink::connect_stream(stream, token.clone(), &peer)
                .await
                .map_err(|e| e.to_string()),
            // Refused by the API server: asking again changes nothing.
            Err(
                error @ (mirrord_kube::KubeError::Forbidden { .. }
                | mirrord_kube::KubeError::Unauthorized { .. }),
            ) => {
                return Err(match error.help() {
                    Some(help) => format!("{error} ({help})"),
                    None => error.to_string(),
                });
            }
            Err(error) => Err(error.to_string()),
        };
        match attempt {
            Ok(link) => return Ok(link),
            Err(message) if std::time::Instant::now() < deadline => {
                tracing::debug!(%message, "the agent is not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(message) => return Err(message),
        }
    }
}

/// Tells whoever started the intproxy why it could not start (`mirrord exec` shows it; the log has
/// the details), on one line.
#[allow(clippy::print_stdout, reason = "the one line `mirrord exec` reads")]
fn announce_failure(message: &str) {
    let one_line = message.replace('\n', " ");
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(
        stdout,
        "{}{one_line}",
        mirrord_session::HELPER_FAILED_PREFIX
    );
    let _ = stdout.flush();
}

#[allow(clippy::print_stdout, reason = "the one line `mirrord exec` reads")]
fn announce(address: SocketAddr) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "MIRRORD_INTPROXY_LISTENING={address}")?;
    stdout.flush()
}
