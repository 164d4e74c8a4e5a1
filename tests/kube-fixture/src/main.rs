//! `mirrord-kube-fixture`: a small Kubernetes API server for tests, speaking the real wire
//! protocol (HTTPS with a generated CA and bearer token, and plain HTTP for `kubectl --server`).
//!
//! It serves the objects of a seed file, discovery, get/list/watch with selectors and pagination,
//! create/replace/patch/delete, `Status` errors (with RBAC denials given on the command line),
//! and `pods/portforward` over WebSocket. A reconcile loop stands in for the Job controller, the
//! scheduler and the kubelet: an agent Job becomes a pod whose container is the real
//! `mirrord-agent` running on this machine, and seeded pods can be backed by real processes
//! (sandbox pods) whose cgroups carry their container IDs.
//!
//! On start it writes a kubeconfig (`--kubeconfig-out`) and prints
//! `MIRRORD_KUBE_FIXTURE_HTTP=URL`, `MIRRORD_KUBE_FIXTURE_HTTPS=URL` and
//! `MIRRORD_KUBE_FIXTURE_READY=1`. It stops on SIGTERM, SIGINT or when its stdin closes, killing
//! what its kubelet started and undoing its cgroups.

mod api;
mod cgroup;
mod cluster;
mod portforward;
mod process;
mod resources;
mod store;
mod table;
mod tls;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::Parser;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

use crate::cluster::{BackedPod, Cluster, ClusterOptions};

#[derive(Debug, Parser)]
#[command(name = "mirrord-kube-fixture")]
struct Args {
    /// JSON file with the objects the cluster starts with (a list, or a `List` object).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/seed.json"))]
    seed: PathBuf,
    /// Plain HTTP listener (no authentication), for `kubectl --server`.
    #[arg(long, default_value = "127.0.0.1:0")]
    http: SocketAddr,
    /// HTTPS listener (bearer token required).
    #[arg(long, default_value = "127.0.0.1:0")]
    https: SocketAddr,
    /// Where to write a kubeconfig for the HTTPS listener (contexts `fixture`, `fixture-http`).
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// A seeded pod backed by a real process: `NAMESPACE/POD[/CONTAINER]=PID`.
    #[arg(long = "pod")]
    pods: Vec<String>,
    /// An image the node can run: `REPOSITORY=BINARY` (any tag). Other images fail to pull.
    #[arg(long = "image")]
    images: Vec<String>,
    /// An RBAC denial: `VERB:RESOURCE`, e.g. `list:jobs.batch` or `create:pods/portforward`.
    #[arg(long = "forbid")]
    forbidden: Vec<String>,
    /// Serve without the Argo Rollouts CRD.
    #[arg(long)]
    no_rollouts: bool,
    /// Log filter.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the runtime");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn split_pair<'a>(
    text: &'a str,
    separator: char,
    what: &str,
) -> Result<(&'a str, &'a str), String> {
    text.split_once(separator)
        .ok_or_else(|| format!("{what} must look like A{separator}B, got {text:?}"))
}

async fn run(args: Args) -> Result<(), String> {
    cgroup::sweep();
    let seed_text = std::fs::read_to_string(&args.seed)
        .map_err(|e| format!("cannot read {}: {e}", args.seed.display()))?;
    let seed: serde_json::Value =
        serde_json::from_str(&seed_text).map_err(|e| format!("{}: {e}", args.seed.display()))?;
    let seed = match seed {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(mut list) => match list.remove("items") {
            Some(serde_json::Value::Array(items)) => items,
            _ => return Err("the seed must be a list of objects".to_owned()),
        },
        _ => return Err("the seed must be a list of objects".to_owned()),
    };
    let mut backed = Vec::new();
    for pod in &args.pods {
        let (path, pid) = split_pair(pod, '=', "--pod")?;
        let parts: Vec<&str> = path.split('/').collect();
        let (namespace, name, container) = match parts.as_slice() {
            [namespace, name] => (namespace, name, None),
            [namespace, name, container] => (namespace, name, Some((*container).to_owned())),
            _ => {
                return Err(format!(
                    "--pod must be NAMESPACE/POD[/CONTAINER]=PID, got {pod:?}"
                ));
            }
        };
        backed.push(BackedPod {
            namespace: (*namespace).to_owned(),
            name: (*name).to_owned(),
            container,
            pid: pid
                .parse()
                .map_err(|_| format!("--pod: {pid:?} is not a pid"))?,
        });
    }
    let images = args
        .images
        .iter()
        .map(|i| split_pair(i, '=', "--image").map(|(r, b)| (r.to_owned(), PathBuf::from(b))))
        .collect::<Result<Vec<_>, _>>()?;
    let forbidden = args
        .forbidden
        .iter()
        .map(|f| split_pair(f, ':', "--forbid").map(|(v, r)| (v.to_owned(), r.to_owned())))
        .collect::<Result<Vec<_>, _>>()?;

    let http_listener = tokio::net::TcpListener::bind(args.http)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.http))?;
    let https_listener = tokio::net::TcpListener::bind(args.https)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.https))?;
    let http_address = http_listener.local_addr().map_err(|e| e.to_string())?;
    let https_address = https_listener.local_addr().map_err(|e| e.to_string())?;
    let credentials = tls::Credentials::generate()?;
    let token = tls::random_token();
    let cluster = Arc::new(Cluster::new(ClusterOptions {
        catalog: resources::Catalog::new(!args.no_rollouts),
        seed,
        token: token.clone(),
        server_address: https_address.to_string(),
        forbidden,
        images,
    })?);
    cluster.back_pods(&backed)?;
    if let Some(path) = &args.kubeconfig_out {
        let kubeconfig = tls::kubeconfig(
            &format!("https://{https_address}"),
            &format!("http://{http_address}"),
            &credentials.ca_pem,
            &token,
        );
        std::fs::write(path, kubeconfig)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    tokio::spawn(Arc::clone(&cluster).run());
    tokio::spawn(serve(Arc::clone(&cluster), http_listener, None));
    tokio::spawn(serve(
        Arc::clone(&cluster),
        https_listener,
        Some(credentials.acceptor()?),
    ));
    announce(&[
        (
            "MIRRORD_KUBE_FIXTURE_HTTP",
            format!("http://{http_address}"),
        ),
        (
            "MIRRORD_KUBE_FIXTURE_HTTPS",
            format!("https://{https_address}"),
        ),
        ("MIRRORD_KUBE_FIXTURE_READY", "1".to_owned()),
    ])
    .map_err(|e| format!("cannot write to stdout: {e}"))?;

    wait_for_stop().await;
    tracing::info!("stopping");
    cluster.shut_down();
    for (pid, dir) in cluster
        .cgroups
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .drain(..)
    {
        cgroup::release(pid, &dir);
    }
    cgroup::sweep();
    Ok(())
}

async fn wait_for_stop() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut interrupt =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let stdin_closed = async {
        let mut stdin = tokio::io::stdin();
        let mut buffer = [0u8; 256];
        while let Ok(read) = stdin.read(&mut buffer).await {
            if read == 0 {
                break;
            }
        }
    };
    tokio::select! {
        _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
        _ = async { match interrupt.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
        _ = stdin_closed => {}
    }
}

async fn serve(
    cluster: Arc<Cluster>,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let cluster = Arc::clone(&cluster);
        let tls = tls.clone();
        tokio::spawn(async move {
            let secure = tls.is_some();
            let service =
                service_fn(move |request| api::handle(Arc::clone(&cluster), request, secure));
            let builder = hyper::server::conn::http1::Builder::new();
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .with_upgrades()
                            .await
                    }
                    Err(error) => {
                        tracing::debug!(%error, "TLS handshake failed");
                        return;
                    }
                },
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
}

#[allow(clippy::print_stdout, reason = "the lines the fixture's starter reads")]
fn announce(lines: &[(&str, String)]) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    for (key, value) in lines {
        writeln!(stdout, "{key}={value}")?;
    }
    stdout.flush()
}
