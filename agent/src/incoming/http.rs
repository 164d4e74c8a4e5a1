//! Stealing only the HTTP requests that match a filter.
//!
//! The agent serves the redirected connection as an HTTP server itself (HTTP/1.1, keep-alive and
//! pipelining, or HTTP/2 with prior knowledge), and routes each request on its own: matching
//! requests go to the client over a delivered connection (HTTP/1.1, kept alive and reused for the
//! matching requests of the same remote connection), and their responses come back the same way;
//! every other request goes to the target's own service. An upgrade (WebSocket) on a stolen
//! request gets a delivered connection of its own, which becomes a raw stream.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mirrord_protocol::incoming::HttpFilter;
use regex::Regex;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::client_stream::ClientStream;
use super::{IncomingSink, announce, connect_to_target};
use crate::namespace::NamespaceWorker;

type Body = BoxBody<Bytes, hyper::Error>;

/// A filter with its regexes compiled once per subscription.
#[derive(Debug)]
pub(crate) enum CompiledFilter {
    /// A `Name: value` header line matches.
    Header(Regex),
    /// The path, or path and query, matches.
    Path(Regex),
    /// The method is this one (case-insensitive).
    Method(String),
    /// Every filter matches.
    AllOf(Vec<CompiledFilter>),
    /// One filter matches.
    AnyOf(Vec<CompiledFilter>),
}

impl CompiledFilter {
    /// Compiles `filter`; regexes match case-insensitively.
    pub(crate) fn compile(filter: &HttpFilter) -> Result<CompiledFilter, String> {
        let regex = |pattern: &str| {
            Regex::new(&format!("(?i){pattern}"))
                .map_err(|error| format!("invalid filter regex `{pattern}`: {error}"))
        };
        Ok(match filter {
            HttpFilter::Header(pattern) => CompiledFilter::Header(regex(pattern)?),
            HttpFilter::Path(pattern) => CompiledFilter::Path(regex(pattern)?),
            HttpFilter::Method(method) => CompiledFilter::Method(method.clone()),
            HttpFilter::AllOf(filters) => CompiledFilter::AllOf(
                filters
                    .iter()
                    .map(CompiledFilter::compile)
                    .collect::<Result<_, _>>()?,
            ),
            HttpFilter::AnyOf(filters) => CompiledFilter::AnyOf(
                filters
                    .iter()
                    .map(CompiledFilter::compile)
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// Whether the request head matches.
    pub(crate) fn matches<B>(&self, request: &Request<B>) -> bool {
        match self {
            CompiledFilter::Header(regex) => request.headers().iter().any(|(name, value)| {
                value
                    .to_str()
                    .is_ok_and(|value| regex.is_match(&format!("{}: {value}", name.as_str())))
            }),
            CompiledFilter::Path(regex) => {
                let uri = request.uri();
                regex.is_match(uri.path())
                    || uri
                        .path_and_query()
                        .is_some_and(|pq| regex.is_match(pq.as_str()))
            }
            CompiledFilter::Method(method) => {
                request.method().as_str().eq_ignore_ascii_case(method)
            }
            CompiledFilter::AllOf(filters) => filters.iter().all(|filter| filter.matches(request)),
            CompiledFilter::AnyOf(filters) => filters.iter().any(|filter| filter.matches(request)),
        }
    }
}

/// What one downstream connection keeps between its requests.
struct ConnectionState<S> {
    remote_peer: SocketAddr,
    destination: SocketAddr,
    port: u16,
    filter: Arc<CompiledFilter>,
    namespace: NamespaceWorker,
    sink: Arc<S>,
    /// The upstream connection to the target's service, reused while it stays open.
    upstream: Mutex<Option<hyper::client::conn::http1::SendRequest<Incoming>>>,
    /// The connection delivered to the client for this connection's stolen requests, reused while
    /// it stays open (the local app sees a keep-alive client, and we skip a connect per request).
    stolen: Mutex<Option<hyper::client::conn::http1::SendRequest<Incoming>>>,
}

/// Serves one redirected connection, routing request by request.
pub(crate) async fn serve_connection<S: IncomingSink>(
    stream: TcpStream,
    remote_peer: SocketAddr,
    destination: SocketAddr,
    port: u16,
    filter: Arc<CompiledFilter>,
    namespace: NamespaceWorker,
    sink: Arc<S>,
) {
    let state = Arc::new(ConnectionState {
        remote_peer,
        destination,
        port,
        filter,
        namespace,
        sink,
        upstream: Mutex::new(None),
        stolen: Mutex::new(None),
    });
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let state = Arc::clone(&state);
        async move { Ok::<_, std::convert::Infallible>(route(state, request).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    if let Err(error) = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(%error, "filtered connection ended with an error");
    }
}

async fn route<S: IncomingSink>(
    state: Arc<ConnectionState<S>>,
    request: Request<Incoming>,
) -> Response<Body> {
    let stolen = state.filter.matches(&request);
    let result = if stolen {
        steal_request(&state, request).await
    } else {
        pass_through(&state, request).await
    };
    result.unwrap_or_else(|message| {
        tracing::debug!(%message, stolen, "request failed");
        let mut response = Response::new(
            Full::new(Bytes::from(message))
                .map_err(|never| match never {})
                .boxed(),
        );
        *response.status_mut() = StatusCode::BAD_GATEWAY;
        response
    })
}

/// Requests travel on as HTTP/1.1 (the local app and the target's service need not speak HTTP/2).
fn as_http1(mut request: Request<Incoming>) -> Request<Incoming> {
    if request.version() == Version::HTTP_2 {
        if let Some(authority) = request.uri().authority().map(|a| a.as_str().to_owned())
            && !request.headers().contains_key(http::header::HOST)
            && let Ok(value) = HeaderValue::from_str(&authority)
        {
            request.headers_mut().insert(http::header::HOST, value);
        }
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_owned();
        if let Ok(uri) = path.parse() {
            *request.uri_mut() = uri;
        }
    }
    *request.version_mut() = Version::HTTP_11;
    request
}

async fn pass_through<S: IncomingSink>(
    state: &ConnectionState<S>,
    request: Request<Incoming>,
) -> Result<Response<Body>, String> {
    let request = as_http1(request);
    let mut upstream = state.upstream.lock().await;
    let reusable = upstream.as_ref().is_some_and(|sender| !sender.is_closed());
    if !reusable {
        let stream = connect_to_target(&state.namespace, state.destination)
            .await
            .map_err(|error| {
                format!(
                    "cannot reach the target's service at {}: {error}",
                    state.destination
                )
            })?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = connection.with_upgrades().await;
        });
        *upstream = Some(sender);
    }
    let sender = upstream.as_mut().expect("set above");
    sender.ready().await.map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    drop(upstream);
    Ok(response.map(BodyExt::boxed))
}

/// A new connection to the client, carrying HTTP/1.1 requests to the local app.
async fn open_stolen_connection<S: IncomingSink>(
    state: &ConnectionState<S>,
) -> Result<hyper::client::conn::http1::SendRequest<Incoming>, String> {
    let Some((connection_id, from_client)) = announce(
        &*state.sink,
        state.remote_peer,
        state.destination,
        state.port,
    )
    .await
    else {
        return Err("the client is gone".to_owned());
    };
    let stream = ClientStream::new(connection_id, Arc::clone(&state.sink), from_client);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.with_upgrades().await;
    });
    Ok(sender)
}

async fn steal_request<S: IncomingSink>(
    state: &ConnectionState<S>,
    mut request: Request<Incoming>,
) -> Result<Response<Body>, String> {
    let upgrading = request.headers().contains_key(http::header::UPGRADE);
    let downstream_upgrade = hyper::upgrade::on(&mut request);
    let request = as_http1(request);
    let mut response = if upgrading {
        // An upgraded connection becomes a raw stream: never share it.
        let mut sender = open_stolen_connection(state).await?;
        sender.send_request(request).await
    } else {
        let mut stolen = state.stolen.lock().await;
        if stolen.as_ref().is_none_or(|sender| sender.is_closed()) {
            *stolen = Some(open_stolen_connection(state).await?);
        }
        let sender = stolen.as_mut().expect("set above");
        sender.ready().await.map_err(|e| e.to_string())?;
        sender.send_request(request).await
    }
    .map_err(|e| format!("the local application did not answer: {e}"))?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        // An upgrade: splice the two upgraded streams into one raw stream.
        let upstream_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            if let (Ok(downstream), Ok(upstream)) =
                (downstream_upgrade.await, upstream_upgrade.await)
            {
                let _ = tokio::io::copy_bidirectional(
                    &mut TokioIo::new(downstream),
                    &mut TokioIo::new(upstream),
                )
                .await;
            }
        });
    }
    Ok(response.map(BodyExt::boxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn filters_match_headers_paths_and_methods() {
        let header =
            CompiledFilter::compile(&HttpFilter::Header("^x-mirrord-user: me$".into())).unwrap();
        assert!(header.matches(&request("GET", "/", &[("X-Mirrord-User", "me")])));
        assert!(!header.matches(&request("GET", "/", &[("x-mirrord-user", "you")])));
        let path = CompiledFilter::compile(&HttpFilter::Path("^/api/".into())).unwrap();
        assert!(path.matches(&request("GET", "/api/users?x=1", &[])));
        assert!(!path.matches(&request("GET", "/health", &[])));
        let query = CompiledFilter::compile(&HttpFilter::Path("debug=1".into())).unwrap();
        assert!(query.matches(&request("GET", "/x?debug=1", &[])));
        let all = CompiledFilter::compile(&HttpFilter::AllOf(vec![
            HttpFilter::Method("post".into()),
            HttpFilter::Path("^/api".into()),
        ]))
        .unwrap();
        assert!(all.matches(&request("POST", "/api", &[])));
        assert!(!all.matches(&request("GET", "/api", &[])));
        let any = CompiledFilter::compile(&HttpFilter::AnyOf(vec![
            HttpFilter::Method("patch".into()),
            HttpFilter::Path("^/debug".into()),
        ]))
        .unwrap();
        assert!(any.matches(&request("GET", "/debug/x", &[])));
        assert!(!any.matches(&request("GET", "/x", &[])));
        assert!(CompiledFilter::compile(&HttpFilter::Header("(".into())).is_err());
    }
}
