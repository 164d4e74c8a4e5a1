//! The HTTP stack under [`kube::Client`], built here instead of by `kube::Client::try_from` for
//! one reason: `TCP_NODELAY` on the connections to the API server, as Go's net package (kubectl,
//! client-go) sets on every TCP connection. kube-rs's own stack uses hyper's connector with
//! Nagle's algorithm left on, and the agent's port-forward is a WebSocket on such a connection:
//! whenever two messages go out back to back (a frame that straddles kube-rs's 4 KiB read buffer,
//! a shutdown followed by a close), the second waited for the API server's delayed ACK, 40 ms.
//!
//! The layers are kube-rs's own, in its order (base URI, retry on 429/503/504, authentication,
//! extra headers) over its TLS connector, with its connect and write timeouts.
//!
//! A proxy (the kubeconfig cluster's `proxy-url`, or else `$HTTPS_PROXY`, as kube-rs reads the
//! kubeconfig) sits between that TLS and the same `TCP_NODELAY` connector, with the schemes
//! kubectl accepts: `http` (an HTTP `CONNECT` tunnel), `https` (the tunnel inside TLS to the
//! proxy, verified with the cluster's TLS settings, as Go does) and `socks5` (the API server's
//! host name resolved by the proxy; port 1080 by default); `host:port` alone is an http proxy,
//! as Go reads `$HTTPS_PROXY`. Credentials in the URL's userinfo go to the proxy, percent-decoded:
//! `Proxy-Authorization: Basic` for http(s), username/password for SOCKS5. Any other scheme is
//! refused by name, and a failure to get through (the proxy down, a `407`) names the proxy: the
//! URL shown without its password.
//! A proxy that comes from `$HTTPS_PROXY` is passed by as Go's `ProxyFromEnvironment` passes it
//! by (kubectl's rule when the kubeconfig names no proxy): for an API server on a loopback
//! address or `localhost` (kind, minikube, a tunnel), and for one `$NO_PROXY` names (IP
//! addresses, CIDR ranges, domains with their subdomains, `*`). A kubeconfig's own `proxy-url` is
//! always used, as kubectl uses it.

use http::Uri;
use hyper::rt::{Read, Write};
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioExecutor;
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ConfigExt};
use tower::retry::RetryLayer;
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ClientError {
    /// The proxy's scheme is none kubectl accepts either.
    #[error(
        "the proxy `{url}` ({origin}) has the unsupported scheme `{scheme}`: the schemes supported are http, https and socks5, as kubectl's"
    )]
    UnsupportedProxy {
        /// The proxy's URL, its password masked.
        url: String,
        /// Where it was configured ([`proxy_source`]).
        origin: &'static str,
        /// Its scheme.
        scheme: String,
    },
    /// The proxy's URL names no host to dial.
    #[error("the proxy `{url}` ({origin}) names no host to connect to")]
    ProxyWithoutHost {
        /// The proxy's URL, its password masked.
        url: String,
        /// Where it was configured ([`proxy_source`]).
        origin: &'static str,
    },
    /// kube-rs's layers or TLS set-up refused the configuration.
    #[error(transparent)]
    Kube(#[from] kube::Error),
}

/// A client for `config` whose connections to the API server send without delay, through the
/// configured proxy if there is one.
pub(crate) fn client(config: kube::Config) -> Result<kube::Client, ClientError> {
    let tcp = tcp_connector(&config);
    let Some(proxy) = proxy(&config)? else {
        return Ok(client_over(config, tcp)?);
    };
    let address = proxy.address.clone();
    match proxy.kind {
        ProxyKind::Socks5 => {
            let socks = socks5(address, tcp, &proxy).map_err(proxy.error_context());
            Ok(client_over(config, socks)?)
        }
        ProxyKind::Https => {
            let tls = config.rustls_https_connector_with_connector(tcp)?;
            Ok(client_over(
                config,
                tunnel(address, tls, &proxy).map_err(proxy.error_context()),
            )?)
        }
        ProxyKind::Http => Ok(client_over(
            config,
            tunnel(address, tcp, &proxy).map_err(proxy.error_context()),
        )?),
    }
}

/// A failure to reach the API server through the proxy, naming the proxy: its connector's own
/// words ("tunnel error: unsuccessful") do not.
#[derive(Debug, thiserror::Error)]
#[error("through the proxy {proxy}")]
struct ThroughProxy {
    /// The proxy's URL, its password masked, and where it was configured.
    proxy: String,
    source: BoxError,
}

/// The proxy to reach the API server through.
#[derive(Debug)]
struct Proxy {
    /// As configured.
    url: Uri,
    kind: ProxyKind,
    /// What the connector dials: scheme, host and port, without the credentials.
    address: Uri,
    /// The credentials, percent-decoded.
    credentials: Intercept,
}

#[derive(Debug, PartialEq)]
enum ProxyKind {
    Http,
    Https,
    Socks5,
}

impl Proxy {
    /// What wraps the proxy connector's errors.
    fn error_context<E: Into<BoxError>>(&self) -> impl Fn(E) -> ThroughProxy + Clone + use<E> {
        let proxy = format!("`{}` ({})", masked(&self.url), proxy_source(&self.url));
        move |error| ThroughProxy {
            proxy: proxy.clone(),
            source: error.into(),
        }
    }
}

/// `config`'s proxy, if it has one that kubectl would use.
fn proxy(config: &kube::Config) -> Result<Option<Proxy>, ClientError> {
    let Some(url) = &config.proxy_url else {
        return Ok(None);
    };
    // `host:port` alone is an http proxy, as Go reads `$HTTPS_PROXY`.
    let kind = match url.scheme_str().unwrap_or("http") {
        "http" => ProxyKind::Http,
        "https" => ProxyKind::Https,
        "socks5" => ProxyKind::Socks5,
        other => {
            return Err(ClientError::UnsupportedProxy {
                url: masked(url),
                origin: proxy_source(url),
                scheme: other.to_owned(),
            });
        }
    };
    let environment = ProxyEnvironment::read();
    if environment.supplies(url) && environment.bypasses(url, &config.cluster_url) {
        tracing::debug!(cluster = %config.cluster_url, "the API server is reached directly: $HTTPS_PROXY does not apply to it");
        return Ok(None);
    }
    // hyper-util's parser of proxy URLs splits the userinfo off, decoded; it intercepts every
    // URL of an http(s) API server.
    let credentials = Matcher::builder()
        .all(url.to_string())
        .build()
        .intercept(&config.cluster_url)
        .ok_or_else(|| ClientError::ProxyWithoutHost {
            url: masked(url),
            origin: proxy_source(url),
        })?;
    Ok(Some(Proxy {
        url: url.clone(),
        kind,
        address: with_default_port(credentials.uri()),
        credentials,
    }))
}

/// kube-rs's layers and TLS over `transport`, the connections to the API server (or to the
/// proxy's tunnel to it).
fn client_over<C>(config: kube::Config, transport: C) -> Result<kube::Client, kube::Error>
where
    C: Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: Connection + Read + Write + Send + Unpin + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    let https = config.rustls_https_connector_with_connector(transport)?;
    let mut connector = TimeoutConnector::new(https);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let hyper_client: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let retry = config
        .default_retry
        .then(|| RetryLayer::new(RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(hyper_client);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// The TCP connections (to the API server or to the proxy): no Nagle, kube-rs's connect timeout.
fn tcp_connector(config: &kube::Config) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    http
}

/// An HTTP `CONNECT` tunnel through the proxy at `address`, reached over `connector`.
fn tunnel<C>(address: Uri, connector: C, proxy: &Proxy) -> Tunnel<C> {
    let tunnel = Tunnel::new(address, connector);
    match proxy.credentials.basic_auth() {
        Some(credentials) => tunnel.with_auth(credentials.clone()),
        None => tunnel,
    }
}

/// A SOCKS5 connection through the proxy at `address`; the proxy resolves the API server's name.
fn socks5(address: Uri, connector: HttpConnector, proxy: &Proxy) -> SocksV5<HttpConnector> {
    let socks = SocksV5::new(address, connector);
    match proxy.credentials.raw_auth() {
        Some((user, password)) => socks.with_auth(user.to_owned(), password.to_owned()),
        None => socks,
    }
}

/// `uri` with its scheme's port when it names none: SOCKS5's is 1080, as in Go's proxy package
/// (the connector itself defaults http to 80 and https to 443).
fn with_default_port(uri: &Uri) -> Uri {
    match (uri.port(), uri.scheme_str(), uri.host()) {
        (None, Some("socks5"), Some(host)) => {
            let mut parts = uri.clone().into_parts();
            parts.authority = format!("{host}:1080").parse().ok();
            Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
        }
        _ => uri.clone(),
    }
}

/// `url` as the user wrote it, without the password.
fn masked(url: &Uri) -> String {
    let text = url.to_string();
    let Some(authority) = url.authority().map(|a| a.as_str()) else {
        return text;
    };
    match authority.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => text.replacen(authority, &format!("{user}:***@{host}"), 1),
            None => text,
        },
        None => text,
    }
}

/// Where kube-rs found the proxy URL: the kubeconfig's cluster, or else the environment.
fn proxy_source(url: &Uri) -> &'static str {
    if ProxyEnvironment::read().supplies(url) {
        "from $HTTPS_PROXY"
    } else {
        "the kubeconfig cluster's proxy-url"
    }
}

/// The proxy variables of the environment that apply to an `https` API server.
#[derive(Debug, Default)]
struct ProxyEnvironment {
    https_proxy: Option<String>,
    no_proxy: Option<String>,
}

impl ProxyEnvironment {
    /// `$HTTPS_PROXY` (else `$https_proxy`) and `$NO_PROXY` (else `$no_proxy`), when not empty.
    fn read() -> Self {
        let first = |names: [&str; 2]| {
            names
                .into_iter()
                .filter_map(|name| std::env::var(name).ok())
                .find(|value| !value.is_empty())
        };
        Self {
            https_proxy: first(["HTTPS_PROXY", "https_proxy"]),
            no_proxy: first(["NO_PROXY", "no_proxy"]),
        }
    }

    /// Whether `url` is the environment's proxy: kube-rs takes `$HTTPS_PROXY` when the
    /// kubeconfig's cluster names no `proxy-url`.
    fn supplies(&self, url: &Uri) -> bool {
        self.https_proxy
            .as_deref()
            .and_then(|value| value.parse::<Uri>().ok())
            .is_some_and(|proxy| proxy == *url)
    }

    /// Whether Go reaches `cluster` without the environment's proxy `url`: always for loopback
    /// addresses and `localhost`, and for a host `$NO_PROXY` names.
    fn bypasses(&self, url: &Uri, cluster: &Uri) -> bool {
        let Some(host) = cluster.host() else {
            return false;
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
        {
            return true;
        }
        // hyper-util's matcher reads a no-proxy list with curl's rules, which agree with Go's
        // for the entries kubectl users write.
        self.no_proxy.as_ref().is_some_and(|no_proxy| {
            Matcher::builder()
                .all(url.to_string())
                .no(no_proxy.clone())
                .build()
                .intercept(cluster)
                .is_none()
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn connections_to_the_api_server_send_without_delay() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let config = kube::Config::new(format!("https://{address}").parse().unwrap());
        let accepting = tokio::spawn(async move { listener.accept().await });
        let stream = tcp_connector(&config)
            .call(format!("https://{address}").parse().unwrap())
            .await
            .unwrap();
        assert!(
            stream.inner().nodelay().unwrap(),
            "TCP_NODELAY is off: a second message in a row waits for the API server's delayed ACK"
        );
        accepting.await.unwrap().unwrap();
    }

    fn config_with_proxy(proxy_url: &str) -> kube::Config {
        let mut config = kube::Config::new("https://10.0.0.1:6443".parse().unwrap());
        config.proxy_url = Some(proxy_url.parse().unwrap());
        config
    }

    /// The credentials of `http://user:p%40ss@host` reach the proxy decoded, and the connector
    /// dials the proxy without them, with `TCP_NODELAY`.
    #[tokio::test]
    async fn a_proxy_url_s_credentials_go_to_the_proxy_decoded() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let config = config_with_proxy(&format!("http://mirrord:p%40ss@{address}"));
        let proxy = proxy(&config).unwrap().unwrap();
        assert_eq!(proxy.kind, ProxyKind::Http);
        let mut connector = tunnel(proxy.address.clone(), tcp_connector(&config), &proxy);
        let proxy_side = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            while !request.ends_with(b"\r\n\r\n") {
                let mut byte = [0];
                stream.read_exact(&mut byte).await.unwrap();
                request.push(byte[0]);
            }
            stream
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        let stream = connector
            .call("https://10.0.0.1:6443".parse().unwrap())
            .await
            .unwrap();
        let request = proxy_side.await.unwrap();
        assert!(
            request.starts_with("CONNECT 10.0.0.1:6443 HTTP/1.1\r\n"),
            "{request}"
        );
        // base64 of `mirrord:p@ss`
        assert!(
            request.contains("Proxy-Authorization: Basic bWlycm9yZDpwQHNz\r\n"),
            "{request}"
        );
        assert!(
            stream.inner().nodelay().unwrap(),
            "TCP_NODELAY is off on the connection to the proxy"
        );
    }

    #[test]
    fn a_proxy_without_a_scheme_is_an_http_proxy() {
        let proxy = proxy(&config_with_proxy("proxy.corp:3128"))
            .unwrap()
            .unwrap();
        assert_eq!(proxy.kind, ProxyKind::Http);
        assert_eq!(
            proxy.address,
            "http://proxy.corp:3128/".parse::<Uri>().unwrap()
        );
    }

    #[test]
    fn socks5_s_port_is_1080_unless_named() {
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        assert_eq!(
            with_default_port(&uri("socks5://proxy.corp/")),
            uri("socks5://proxy.corp:1080/")
        );
        assert_eq!(
            with_default_port(&uri("socks5://proxy.corp:9050/")),
            uri("socks5://proxy.corp:9050/")
        );
        assert_eq!(
            with_default_port(&uri("http://proxy.corp/")),
            uri("http://proxy.corp/")
        );
    }

    #[test]
    fn a_password_never_shows_in_an_error() {
        let config = config_with_proxy("socks4://mirrord:secret@proxy.corp:1080");
        let Err(error) = client(config) else {
            panic!("a socks4 proxy was accepted")
        };
        let error = error.to_string();
        assert!(
            error.starts_with("the proxy `socks4://mirrord:***@proxy.corp:1080/` ("),
            "{error}"
        );
        assert!(!error.contains("secret"), "{error}");
    }

    /// `$HTTPS_PROXY` is passed by for loopback API servers and the hosts `$NO_PROXY` names, as
    /// kubectl passes it by; a kubeconfig's own proxy-url is not the environment's.
    #[test]
    fn the_environment_s_proxy_is_passed_by_for_loopback_and_no_proxy_hosts() {
        let uri = |text: &str| text.parse::<Uri>().unwrap();
        let proxy = uri("http://proxy.corp:3128");
        let environment = ProxyEnvironment {
            https_proxy: Some("http://proxy.corp:3128".into()),
            no_proxy: Some("10.0.0.0/8, .internal.example, api.example.com, 192.168.1.7".into()),
        };
        assert!(environment.supplies(&proxy));
        assert!(!environment.supplies(&uri("http://other.corp:3128")));
        for (cluster, direct) in [
            ("https://127.0.0.1:6443", true),
            ("https://[::1]:6443", true),
            ("https://localhost:6443", true),
            ("https://10.96.0.1:443", true),
            ("https://kube.internal.example:6443", true),
            ("https://api.example.com", true),
            ("https://eu.api.example.com", true),
            ("https://192.168.1.7:6443", true),
            ("https://192.168.1.8:6443", false),
            ("https://api.example.com.evil.test", false),
            ("https://notapi.example.com", false),
            ("https://k8s.example.org:6443", false),
        ] {
            assert_eq!(
                environment.bypasses(&proxy, &uri(cluster)),
                direct,
                "{cluster}"
            );
        }
        let without_no_proxy = ProxyEnvironment {
            no_proxy: None,
            ..environment
        };
        assert!(without_no_proxy.bypasses(&proxy, &uri("https://127.0.0.1:6443")));
        assert!(!without_no_proxy.bypasses(&proxy, &uri("https://10.96.0.1:443")));
        let everything = ProxyEnvironment {
            https_proxy: None,
            no_proxy: Some("*".into()),
        };
        assert!(everything.bypasses(&proxy, &uri("https://k8s.example.org:6443")));
    }
}
