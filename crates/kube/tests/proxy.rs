//! A kubeconfig's `proxy-url`, as kubectl honours it: the client reaches the real API server of
//! the test cluster (`tests/cluster`) through a proxy written here — HTTP `CONNECT`, the same
//! inside TLS, and SOCKS5 — which sees the API server's address as the target, and the
//! connection to the proxy sends without delay (`TCP_NODELAY`) like every other connection to the
//! API server; the agent's port-forward goes through it too. A scheme kubectl refuses is refused in words that name the proxy, and so is a
//! proxy that refuses the tunnel.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, ListParams};
use mirrord_kube::{AgentPod, Cluster, KubeError, KubeSettings};
use mirrord_test_cluster::{Cluster as TestCluster, ClusterOptions, IDLE_IMAGE};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the proxy saw of one connection: who connected, where it asked to go, and with which
/// credentials (`Proxy-Authorization`'s value, or SOCKS5's `user:password`).
#[derive(Debug)]
struct Seen {
    client: SocketAddr,
    target: String,
    credentials: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Http,
    Https,
    Socks5,
}

/// A proxy on loopback that reports each connection on the returned channel and tunnels it.
async fn start_proxy(
    kind: Kind,
    test: &TestCluster,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tls = matches!(kind, Kind::Https).then(|| tls_acceptor(test.dir()));
    let (seen, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (stream, client) = listener.accept().await.unwrap();
            let seen = seen.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match (kind, tls) {
                    (Kind::Socks5, _) => socks5(stream, client, seen).await,
                    (_, Some(tls)) => {
                        connect(tls.accept(stream).await.unwrap(), client, seen).await
                    }
                    (_, None) => connect(stream, client, seen).await,
                }
            });
        }
    });
    (address, seen_rx)
}

/// An HTTP proxy's `CONNECT`: the request line names the target; `200`, then bytes both ways.
async fn connect<S>(mut stream: S, client: SocketAddr, seen: mpsc::UnboundedSender<Seen>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(head) = request_head(&mut stream).await else {
        return;
    };
    let target = head
        .strip_prefix("CONNECT ")
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("not a CONNECT request: {head}"))
        .to_owned();
    let credentials = head
        .lines()
        .find_map(|line| line.strip_prefix("Proxy-Authorization: "))
        .map(str::to_owned);
    let seen_now = Seen {
        client,
        target,
        credentials,
    };
    tunnel(
        stream,
        seen_now,
        &seen,
        b"HTTP/1.1 200 Connection established\r\n\r\n",
    )
    .await;
}

/// An HTTP request's head, up to its blank line; `None` when the client leaves first.
async fn request_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<String> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        stream.read_exact(&mut byte).await.ok()?;
        head.push(byte[0]);
    }
    Some(String::from_utf8(head).unwrap())
}

/// A SOCKS5 server (RFC 1928), `CONNECT` only, with username/password authentication (RFC 1929)
/// when the client offers it.
async fn socks5(mut stream: TcpStream, client: SocketAddr, seen: mpsc::UnboundedSender<Seen>) {
    let mut greeting = [0; 2];
    stream.read_exact(&mut greeting).await.unwrap();
    assert_eq!(greeting[0], 5, "not SOCKS5");
    let mut methods = vec![0; usize::from(greeting[1])];
    stream.read_exact(&mut methods).await.unwrap();
    let credentials = if methods.contains(&2) {
        stream.write_all(&[5, 2]).await.unwrap();
        let version = stream.read_u8().await.unwrap();
        assert_eq!(version, 1, "username/password version");
        let mut fields = Vec::new();
        for _ in 0..2 {
            let length = stream.read_u8().await.unwrap();
            let mut field = vec![0; usize::from(length)];
            stream.read_exact(&mut field).await.unwrap();
            fields.push(String::from_utf8(field).unwrap());
        }
        stream.write_all(&[1, 0]).await.unwrap();
        Some(fields.join(":"))
    } else {
        assert!(methods.contains(&0), "no-authentication not offered");
        stream.write_all(&[5, 0]).await.unwrap();
        None
    };
    let mut request = [0; 4];
    stream.read_exact(&mut request).await.unwrap();
    assert_eq!(&request[..3], &[5, 1, 0], "not a CONNECT");
    let host = match request[3] {
        1 => {
            let mut ip = [0; 4];
            stream.read_exact(&mut ip).await.unwrap();
            std::net::Ipv4Addr::from(ip).to_string()
        }
        3 => {
            let length = stream.read_u8().await.unwrap();
            let mut name = vec![0; usize::from(length)];
            stream.read_exact(&mut name).await.unwrap();
            String::from_utf8(name).unwrap()
        }
        4 => {
            let mut ip = [0; 16];
            stream.read_exact(&mut ip).await.unwrap();
            format!("[{}]", std::net::Ipv6Addr::from(ip))
        }
        other => panic!("address type {other}"),
    };
    let port = stream.read_u16().await.unwrap();
    let target = format!("{host}:{port}");
    let seen_now = Seen {
        client,
        target,
        credentials,
    };
    tunnel(stream, seen_now, &seen, &[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await;
}

/// Connects to what the client asked for, records the request, answers `reply` (the protocol's
/// success) and carries bytes both ways until either side closes.
async fn tunnel<S>(mut stream: S, request: Seen, seen: &mpsc::UnboundedSender<Seen>, reply: &[u8])
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut upstream = TcpStream::connect(&request.target).await.unwrap();
    seen.send(request).unwrap();
    stream.write_all(reply).await.unwrap();
    let _ = tokio::io::copy_bidirectional(&mut stream, &mut upstream).await;
}

/// TLS with the API server's own certificate (for 127.0.0.1, signed by the cluster's CA, which
/// the kubeconfig trusts).
fn tls_acceptor(dir: &Path) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certificates = CertificateDer::pem_file_iter(dir.join("serving.crt"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("serving.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certificates, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// The test cluster's admin kubeconfig with `proxy-url: {proxy_url}` in its cluster.
fn kubeconfig_with_proxy(test: &TestCluster, name: &str, proxy_url: &str) -> PathBuf {
    let original = std::fs::read_to_string(&test.kubeconfig).unwrap();
    let server_line = format!("    server: {}\n", test.server);
    assert!(original.contains(&server_line), "{original}");
    let path = test.dir().join(name);
    std::fs::write(
        &path,
        original.replace(
            &server_line,
            &format!("    proxy-url: {proxy_url}\n{server_line}"),
        ),
    )
    .unwrap();
    path
}

async fn connect_with(kubeconfig: &Path) -> Result<Cluster, KubeError> {
    Cluster::connect(&KubeSettings {
        kubeconfig: Some(kubeconfig.display().to_string()),
        ..KubeSettings::default()
    })
    .await
}

/// `TCP_NODELAY` of this process's TCP socket whose local address is `address`.
fn nodelay_of_socket_at(address: SocketAddr) -> bool {
    for entry in std::fs::read_dir("/proc/self/fd").unwrap() {
        let Ok(entry) = entry else { continue };
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let is_socket = std::fs::read_link(entry.path())
            .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
        if !is_socket {
            continue;
        }
        let mut local: libc::sockaddr_in = zeroed_sockaddr_in();
        let mut length = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        // SAFETY: `local` is a sockaddr_in of `length` bytes; a descriptor that closed meanwhile
        // only makes the call fail.
        let named = unsafe {
            libc::getsockname(fd, (&raw mut local).cast::<libc::sockaddr>(), &mut length)
        };
        if named != 0 || i32::from(local.sin_family) != libc::AF_INET {
            continue;
        }
        let local = SocketAddr::from((
            u32::from_be(local.sin_addr.s_addr).to_be_bytes(),
            u16::from_be(local.sin_port),
        ));
        if local != address {
            continue;
        }
        let mut value: libc::c_int = 0;
        let mut size = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` is a c_int of `size` bytes, what TCP_NODELAY reads into.
        let got = unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&raw mut value).cast::<libc::c_void>(),
                &mut size,
            )
        };
        assert_eq!(got, 0, "getsockopt(TCP_NODELAY) on fd {fd}");
        return value != 0;
    }
    panic!("no socket of this process is bound to {address}");
}

fn zeroed_sockaddr_in() -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain data; all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

/// Lists the namespaces through the proxy (`{scheme}://{userinfo}PROXY`), checks where the proxy
/// was asked to go and that the connection to it sends without delay, and returns the
/// credentials it was given.
async fn lists_namespaces_through(
    kind: Kind,
    scheme: &str,
    userinfo: &str,
    test: &TestCluster,
) -> Option<String> {
    let (proxy, mut seen) = start_proxy(kind, test).await;
    let kubeconfig = kubeconfig_with_proxy(
        test,
        &format!("kubeconfig-{scheme}"),
        &format!("{scheme}://{userinfo}{proxy}"),
    );
    let cluster = connect_with(&kubeconfig)
        .await
        .unwrap_or_else(|e| panic!("{scheme} proxy: {e}"));
    let namespaces: Api<Namespace> = Api::all(cluster.client.clone());
    let names: Vec<String> = namespaces
        .list(&ListParams::default())
        .await
        .unwrap_or_else(|e| panic!("listing namespaces through the {scheme} proxy: {e}"))
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    assert!(names.iter().any(|n| n == "kube-system"), "{names:?}");
    let first = seen
        .try_recv()
        .unwrap_or_else(|_| panic!("the {scheme} proxy saw no connection"));
    let api_server = test.server.strip_prefix("https://").unwrap();
    assert_eq!(
        first.target, api_server,
        "the {scheme} proxy was asked for another target"
    );
    assert!(
        nodelay_of_socket_at(first.client),
        "TCP_NODELAY is off on the connection to the {scheme} proxy: a second message in a row waits for a delayed ACK"
    );
    drop(cluster);
    first.credentials
}

#[tokio::test]
async fn an_http_proxy_url_tunnels_to_the_api_server_with_connect() {
    let test = TestCluster::start(ClusterOptions::default());
    let credentials = lists_namespaces_through(Kind::Http, "http", "mirrord:p%40ss@", &test).await;
    // base64 of `mirrord:p@ss`: the password percent-decoded, as kubectl sends it
    assert_eq!(credentials.as_deref(), Some("Basic bWlycm9yZDpwQHNz"));
}

#[tokio::test]
async fn an_https_proxy_url_tunnels_to_the_api_server_inside_tls() {
    let test = TestCluster::start(ClusterOptions::default());
    let credentials = lists_namespaces_through(Kind::Https, "https", "", &test).await;
    assert_eq!(credentials, None);
}

#[tokio::test]
async fn a_socks5_proxy_url_connects_to_the_api_server() {
    let test = TestCluster::start(ClusterOptions::default());
    let credentials =
        lists_namespaces_through(Kind::Socks5, "socks5", "mirrord:p%40ss@", &test).await;
    assert_eq!(credentials.as_deref(), Some("mirrord:p@ss"));
}

#[tokio::test]
async fn a_proxy_scheme_kubectl_refuses_is_refused_by_name() {
    let dir = tempdir();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    proxy-url: socks4://me:secret@proxy.corp:1080\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n",
    )
    .unwrap();
    let Err(error) = connect_with(&kubeconfig).await else {
        panic!("a socks4 proxy-url was accepted");
    };
    assert_eq!(
        error.to_string(),
        "cannot create the Kubernetes client: the proxy `socks4://me:***@proxy.corp:1080/` (the kubeconfig cluster's proxy-url) has the unsupported scheme `socks4`: the schemes supported are http, https and socks5, as kubectl's"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mirrord-kube-proxy-test-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The agent's port-forward (a WebSocket upgrade) through the proxy: a pod whose port kwok
/// forwards to an echo server of the test's.
#[tokio::test]
async fn the_port_forward_to_the_agent_goes_through_an_http_proxy() {
    let test = TestCluster::start(ClusterOptions::default());
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_address = echo.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = echo.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut reading, mut writing) = stream.split();
                let _ = tokio::io::copy(&mut reading, &mut writing).await;
            });
        }
    });
    test.apply(&format!(
        r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "echo", "namespace": "default"}},
          "spec": {{"containers": [{{"name": "main", "image": "{IDLE_IMAGE}"}}]}}}}"#
    ));
    test.apply(&format!(
        r#"{{"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "PortForward",
          "metadata": {{"name": "echo", "namespace": "default"}},
          "spec": {{"forwards": [{{"ports": [9000], "target": {{"address": "127.0.0.1", "port": {}}}}}]}}}}"#,
        echo_address.port()
    ));
    test.wait_for(
        &["pod", "echo", "-o", "jsonpath={.status.phase}"],
        "Running",
        Duration::from_secs(60),
    );
    let (proxy, mut seen) = start_proxy(Kind::Http, &test).await;
    let kubeconfig = kubeconfig_with_proxy(&test, "kubeconfig-http", &format!("http://{proxy}"));
    let cluster = connect_with(&kubeconfig).await.unwrap();
    let agent = AgentPod {
        namespace: "default".to_owned(),
        pod_name: "echo".to_owned(),
        port: 9000,
    };
    let mut stream = mirrord_kube::connect_agent(&cluster, &agent).await.unwrap();
    let message = b"through the proxy and back";
    stream.write_all(message).await.unwrap();
    let mut echoed = vec![0; message.len()];
    tokio::time::timeout(Duration::from_secs(60), stream.read_exact(&mut echoed))
        .await
        .expect("no echo through the port-forward within 60 s")
        .unwrap();
    assert_eq!(echoed, message);
    let first = seen
        .try_recv()
        .expect("the port-forward did not go through the proxy");
    assert_eq!(first.target, test.server.strip_prefix("https://").unwrap());
}

/// A `407` from the proxy: the error says which proxy, and where it was configured.
#[tokio::test]
async fn a_proxy_that_refuses_the_tunnel_is_named_in_the_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                if request_head(&mut stream).await.is_none() {
                    return;
                }
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    let dir = tempdir();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:6443\n    proxy-url: http://{proxy}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: t\n"),
    )
    .unwrap();
    let cluster = connect_with(&kubeconfig).await.unwrap();
    let path = mirrord_kube::TargetPath::parse("pod/api").unwrap();
    let error = mirrord_kube::resolve_target(&cluster, None, &path)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("cannot get pods in namespace `default`: ")
            && error.ends_with(&format!(
                ": through the proxy `http://{proxy}/` (the kubeconfig cluster's proxy-url): tunnel error: proxy authorization required"
            )),
        "{error}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}
