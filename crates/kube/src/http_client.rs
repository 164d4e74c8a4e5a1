//! The HTTP stack under [`kube::Client`], built here instead of by `kube::Client::try_from` for
//! one reason: `TCP_NODELAY` on the connections to the API server, as Go's net package (kubectl,
//! client-go) sets on every TCP connection. kube-rs's own stack uses hyper's connector with
//! Nagle's algorithm left on, and the agent's port-forward is a WebSocket on such a connection:
//! whenever two messages go out back to back (a frame that straddles kube-rs's 4 KiB read buffer,
//! a shutdown followed by a close), the second waited for the API server's delayed ACK, 40 ms.
//!
//! The layers are kube-rs's own, in its order (base URI, retry on 429/503/504, authentication,
//! extra headers) over its TLS connector, with its connect and write timeouts. A configured proxy
//! (`proxy-url`) is left to kube-rs's builder, which implements it (without `TCP_NODELAY`).

use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ConfigExt};
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder};

/// A client for `config` whose connections to the API server send without delay.
pub(crate) fn client(config: kube::Config) -> Result<kube::Client, kube::Error> {
    if config.proxy_url.is_some() {
        return kube::Client::try_from(config);
    }
    let https = config.rustls_https_connector_with_connector(tcp_connector(&config))?;
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

/// The TCP connections under TLS: no Nagle, kube-rs's connect timeout.
fn tcp_connector(config: &kube::Config) -> HttpConnector {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(config.connect_timeout);
    http
}

#[cfg(test)]
mod tests {
    use tower::Service;

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
}
