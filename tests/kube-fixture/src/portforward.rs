//! `pods/portforward` over WebSocket with the `v4.channel.k8s.io` framing: every binary message
//! starts with a channel byte; port `i` of the request uses channel `2i` for data and `2i+1` for
//! errors; the first message on each channel carries the port number (u16, little endian). Each
//! port's bytes are relayed to wherever the kubelet says the pod's port really listens.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::api::{Body, Target, full, status_error};
use crate::cluster::Cluster;

const PROTOCOL: &str = "v4.channel.k8s.io";

pub(crate) async fn serve(
    cluster: Arc<Cluster>,
    target: &Target,
    request: Request<Incoming>,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let namespace = target.namespace.clone().unwrap_or_default();
    let pod = target.name.clone().unwrap_or_default();
    let Some(pod_object) = cluster.store().get("pods", &namespace, &pod).cloned() else {
        return status_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pods \"{pod}\" not found"),
            Some(serde_json::json!({"name": pod, "kind": "pods"})),
        );
    };
    let ports: Vec<u16> = query
        .get("ports")
        .map(|p| p.split(',').filter_map(|p| p.trim().parse().ok()).collect())
        .unwrap_or_default();
    if ports.is_empty() {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "query parameter \"port\" is required",
            None,
        );
    }
    if pod_object["status"]["phase"] != serde_json::json!("Running") {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!(
                "unable to upgrade connection: pod {pod} is not running (phase {})",
                pod_object["status"]["phase"]
            ),
            None,
        );
    }
    let headers = request.headers();
    let upgrade_ok = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let offers_v4 = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == PROTOCOL);
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Upgrade request required",
            None,
        );
    };
    if !upgrade_ok || !offers_v4 {
        return status_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            &format!("unable to upgrade: this server speaks WebSocket with {PROTOCOL} only"),
            None,
        );
    }
    let uid = pod_object["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let mut shutdown = cluster.shutdown_rx();
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(request).await else {
            return;
        };
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        tokio::select! {
            _ = relay(cluster, socket, namespace, pod, uid, ports) => {}
            _ = shutdown.changed() => {}
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "Upgrade")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(key.as_bytes()),
        )
        .header(header::SEC_WEBSOCKET_PROTOCOL, PROTOCOL)
        .body(full(""))
        .expect("valid response")
}

async fn relay<S>(
    cluster: Arc<Cluster>,
    socket: WebSocketStream<S>,
    namespace: String,
    pod: String,
    uid: String,
    ports: Vec<u16>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = socket.split();
    let (outgoing_tx, mut outgoing_rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing_rx.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let mut to_port: HashMap<u8, mpsc::Sender<Option<Vec<u8>>>> = HashMap::new();
    let mut open_ports = 0usize;
    let (port_closed_tx, mut port_closed_rx) = mpsc::channel::<()>(ports.len().max(1));
    for (index, port) in ports.iter().copied().enumerate() {
        let data_channel = (2 * index) as u8;
        let error_channel = data_channel + 1;
        for channel in [data_channel, error_channel] {
            let mut initial = vec![channel];
            initial.extend_from_slice(&port.to_le_bytes());
            let _ = outgoing_tx.send(Message::binary(initial)).await;
        }
        let connection = match cluster.endpoint(&namespace, &pod, port) {
            Some(address) => tokio::net::TcpStream::connect(address).await.ok(),
            None => None,
        };
        let Some(connection) = connection else {
            let mut message = vec![error_channel];
            message.extend_from_slice(format!("error forwarding port {port} to pod {uid}, uid : failed to connect to localhost:{port} inside namespace \"{namespace}\": connection refused").as_bytes());
            let _ = outgoing_tx.send(Message::binary(message)).await;
            continue;
        };
        open_ports += 1;
        let (mut reader, mut writer) = connection.into_split();
        let (bytes_tx, mut bytes_rx) = mpsc::channel::<Option<Vec<u8>>>(64);
        to_port.insert(data_channel, bytes_tx);
        tokio::spawn(async move {
            while let Some(Some(bytes)) = bytes_rx.recv().await {
                if writer.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });
        let outgoing_tx = outgoing_tx.clone();
        let port_closed_tx = port_closed_tx.clone();
        tokio::spawn(async move {
            let mut buffer = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(read) => {
                        let mut message = Vec::with_capacity(read + 1);
                        message.push(data_channel);
                        message.extend_from_slice(&buffer[..read]);
                        if outgoing_tx.send(Message::binary(message)).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = port_closed_tx.send(()).await;
        });
    }
    if open_ports == 0 {
        let _ = outgoing_tx.send(Message::Close(None)).await;
        let _ = writer.await;
        return;
    }
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(Ok(Message::Binary(bytes))) if !bytes.is_empty() => {
                    if let Some(port) = to_port.get(&bytes[0]) {
                        let _ = port.send(Some(bytes[1..].to_vec())).await;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = port_closed_rx.recv() => {
                open_ports -= 1;
                if open_ports == 0 {
                    break;
                }
            }
        }
    }
    for port in to_port.values() {
        let _ = port.send(None).await;
    }
    let _ = outgoing_tx.send(Message::Close(None)).await;
    drop(outgoing_tx);
    let _ = writer.await;
}
