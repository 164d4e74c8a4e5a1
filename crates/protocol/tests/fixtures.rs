//! Wire compatibility: encoded frames committed under `tests/fixtures/` must keep decoding to the same
//! values, and the same values must keep encoding to the same bytes. A failure here means the wire format
//! changed: bump the protocol version (see the crate docs), then regenerate with
//! `UPDATE_EXPECT=1 cargo test -p mirrord-protocol --test fixtures`.

mod samples;

use std::{collections::BTreeSet, fmt::Debug, fs, path::PathBuf};

use mirrord_protocol::{
    AgentRequest, AgentResponse, AgentToClient, Bytes, ClientToAgent, ConnectionId, ErrorCode,
    LayerRequest, LayerResponse, LayerToProxy, ProxyToLayer, RemoteError, RequestId, encode,
    files::{FileRequest, FileResponse, OpenFlags},
    incoming::{NewIncomingConnection, PortSubscription, SubscriptionMode},
    outgoing::{ConnectionData, OutgoingUnixConnectRequest, UnixConnectRequest},
};
use serde::{Serialize, de::DeserializeOwned};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

fn updating() -> bool {
    std::env::var_os("UPDATE_EXPECT").is_some_and(|value| value == "1")
}

/// Checks (or, with `UPDATE_EXPECT=1`, writes) `tests/fixtures/{name}.bin`.
fn check_fixture<T: Serialize + DeserializeOwned + PartialEq + Debug>(name: &str, expected: &T) {
    let path = fixture_dir().join(format!("{name}.bin"));
    let frame = encode(expected).unwrap();
    if updating() {
        fs::create_dir_all(fixture_dir()).unwrap();
        fs::write(&path, &frame).unwrap();
        return;
    }
    let stored = fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read fixture {}: {error}; create it with UPDATE_EXPECT=1",
            path.display()
        )
    });
    let mut decoder = mirrord_protocol::FrameDecoder::new();
    decoder.push(&stored);
    let decoded = decoder
        .pop::<T>()
        .unwrap_or_else(|error| panic!("fixture {name} no longer decodes: {error}"));
    assert_eq!(
        decoded.as_ref(),
        Some(expected),
        "fixture {name} decodes to a different value"
    );
    assert_eq!(
        decoder.buffered_len(),
        0,
        "fixture {name} has bytes after its frame"
    );
    assert_eq!(
        frame, stored,
        "{name} now encodes to different bytes: the wire format changed"
    );
}

/// A fixture's name and the check that takes that name.
type Fixture = (&'static str, Box<dyn Fn(&str)>);

/// Every fixture, so that a stray file is noticed too.
fn fixtures() -> Vec<Fixture> {
    fn entry<T: Serialize + DeserializeOwned + PartialEq + Debug + 'static>(
        name: &'static str,
        value: T,
    ) -> Fixture {
        (name, Box::new(move |name| check_fixture(name, &value)))
    }
    vec![
        entry("hello", samples::hellos().remove(0)),
        entry("hello_reply_welcome", samples::hello_replies().remove(0)),
        entry("hello_reply_refused", samples::hello_replies().remove(1)),
        entry(
            "layer_open_request",
            LayerToProxy::Request {
                id: RequestId(1),
                request: LayerRequest::File(FileRequest::Open {
                    path: "/etc/app/config.yaml".into(),
                    flags: OpenFlags {
                        cloexec: true,
                        ..OpenFlags::READ_ONLY
                    },
                    mode: 0,
                }),
            },
        ),
        entry(
            "proxy_read_response",
            ProxyToLayer::Response {
                id: RequestId(2),
                result: Ok(LayerResponse::File(FileResponse::Read(Bytes::from(
                    b"key: value\n",
                )))),
            },
        ),
        entry(
            "proxy_error_response",
            ProxyToLayer::Response {
                id: RequestId(3),
                result: Err(RemoteError::new(
                    ErrorCode::NotFound,
                    "/etc/app/missing.yaml",
                )),
            },
        ),
        entry(
            "agent_stat_response",
            AgentToClient::Response {
                id: RequestId(4),
                result: Ok(AgentResponse::File(FileResponse::Metadata(
                    samples::metadata(),
                ))),
            },
        ),
        entry(
            "agent_getaddrinfo_response",
            AgentToClient::Response {
                id: RequestId(5),
                result: Ok(AgentResponse::AddrInfo(samples::addr_infos())),
            },
        ),
        entry(
            "client_steal_http_request",
            ClientToAgent::Request {
                id: RequestId(6),
                request: AgentRequest::PortSubscribe(PortSubscription {
                    port: 80,
                    mode: SubscriptionMode::StealHttp(samples::http_filter()),
                }),
            },
        ),
        entry(
            "client_steal_handover_request",
            ClientToAgent::Request {
                id: RequestId(11),
                request: AgentRequest::PortSubscribe(PortSubscription {
                    port: 80,
                    mode: SubscriptionMode::StealHandover,
                }),
            },
        ),
        entry(
            "fd_take_incoming_request",
            mirrord_protocol::fd_channel::FdRequest::TakeIncoming {
                remote_peer: samples::addr("10.0.0.9:33000"),
                destination: samples::addr("10.0.0.5:80"),
            },
        ),
        entry(
            "agent_incoming_connection",
            AgentToClient::IncomingConnection(NewIncomingConnection {
                connection_id: ConnectionId(7),
                remote_peer: samples::addr("10.0.0.9:33000"),
                destination: samples::addr("[fd00::5]:80"),
                port: 80,
            }),
        ),
        entry(
            "client_outgoing_data",
            ClientToAgent::OutgoingData(ConnectionData {
                connection_id: ConnectionId(8),
                data: Bytes::from(b"PING\r\n"),
            }),
        ),
        entry(
            "client_unix_connect_request",
            ClientToAgent::Request {
                id: RequestId(9),
                request: AgentRequest::UnixConnect(UnixConnectRequest {
                    path: "/run/app.sock".into(),
                }),
            },
        ),
        entry(
            "layer_unix_connect_request",
            LayerToProxy::Request {
                id: RequestId(10),
                request: LayerRequest::OutgoingUnixConnect(OutgoingUnixConnectRequest {
                    path: "/run/app.sock".into(),
                }),
            },
        ),
    ]
}

#[test]
fn fixtures_still_decode_to_the_same_values() {
    for (name, check) in fixtures() {
        check(name);
    }
}

#[test]
fn no_stray_fixture_files() {
    let known: BTreeSet<String> = fixtures()
        .into_iter()
        .map(|(name, _)| format!("{name}.bin"))
        .collect();
    if updating() {
        fs::create_dir_all(fixture_dir()).unwrap();
    }
    let present: BTreeSet<String> = fs::read_dir(fixture_dir())
        .expect("tests/fixtures exists")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    if updating() {
        for stray in present.difference(&known) {
            fs::remove_file(fixture_dir().join(stray)).unwrap();
        }
        return;
    }
    assert_eq!(present, known, "fixture files and the fixture list differ");
}

/// Pins a few bytes by hand, so that a change in the framing itself (not just in a message) is caught even
/// if someone regenerates the fixtures without thinking.
#[test]
fn framing_bytes_are_pinned() {
    let frame = encode(&ClientToAgent::Ping { nonce: 300 }).unwrap();
    // length 3, variant 1 (Ping), varint 300 = 0xac 0x02
    assert_eq!(frame, [0, 0, 0, 3, 1, 0xac, 0x02]);
}
