//! A running session: what the user process needs to reach it (the intproxy's address, the
//! token, the agent's descriptor socket), where its logs are, and its helper processes; and the
//! one way a process other than a layer connects to it as a layer ([`Session::connect_as_layer`]).

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use mirrord_protocol::frame::{read_frame, write_frame};
use mirrord_protocol::handshake::{ClientKind, Hello, HelloReply};
use mirrord_protocol::layer_channel::ProxyToLayer;
use mirrord_protocol::token::SessionToken;
use mirrord_protocol::version::ProtocolVersion;

use crate::SessionError;

/// A running session.
#[derive(Debug)]
pub struct Session {
    pub token: SessionToken,
    pub intproxy_addr: SocketAddr,
    /// The agent's abstract unix socket for passing file descriptors, when the agent runs on this
    /// machine (see `mirrord_protocol::fd_channel`).
    pub agent_fd_socket: Option<String>,
    pub target_pid: Option<u32>,
    pub agent_log: PathBuf,
    pub intproxy_log: PathBuf,
    /// The agent and intproxy processes, to notice when they exit or to end the session early.
    pub processes: SessionProcesses,
    /// What the user should know about the session (e.g. other replicas of the target's
    /// workload still receive traffic): `mirrord exec` prints them, the IDE shows them as
    /// warnings.
    pub notices: Vec<String>,
}

/// The helper processes of a session (children of the process that started it).
#[derive(Debug, Default)]
pub struct SessionProcesses {
    pub(crate) agent: Option<Child>,
    pub(crate) intproxy: Option<Child>,
}

/// Which helper processes of a session are still running (see [`Session::poll`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionStatus {
    pub agent_running: bool,
    pub intproxy_running: bool,
}

impl Session {
    /// Connects to the session's intproxy as a layer of this process would and says hello with
    /// the session's token; `read_timeout` bounds each later read. Used to read the target's
    /// environment (`mirrord exec`, the sidecar) and for the sidecar's anchor connection.
    pub fn connect_as_layer(&self, read_timeout: Duration) -> Result<TcpStream, SessionError> {
        let error = |message: String| SessionError::LayerConnection {
            intproxy: self.intproxy_addr,
            message,
        };
        let mut stream = TcpStream::connect_timeout(&self.intproxy_addr, Duration::from_secs(5))
            .map_err(|e| error(e.to_string()))?;
        stream
            .set_read_timeout(Some(read_timeout))
            .map_err(|e| error(e.to_string()))?;
        let hello = Hello::new(
            self.token.clone(),
            ClientKind::Layer {
                pid: std::process::id(),
                parent_pid: None,
            },
        );
        write_frame(&mut stream, &hello).map_err(|e| error(e.to_string()))?;
        let reply: HelloReply = read_frame(&mut stream).map_err(|e| error(e.to_string()))?;
        reply
            .check(ProtocolVersion::CURRENT)
            .map_err(|e| error(e.to_string()))?;
        Ok(stream)
    }

    /// The agent's process id, while this session holds it.
    pub fn agent_pid(&self) -> Option<u32> {
        self.processes.agent.as_ref().map(Child::id)
    }

    /// The intproxy's process id, while this session holds it.
    pub fn intproxy_pid(&self) -> Option<u32> {
        self.processes.intproxy.as_ref().map(Child::id)
    }

    /// Checks (without blocking) which helpers still run, reaping those that exited.
    pub fn poll(&mut self) -> SessionStatus {
        SessionStatus {
            agent_running: still_running(&mut self.processes.agent),
            intproxy_running: still_running(&mut self.processes.intproxy),
        }
    }

    /// Ends the session now: asks the intproxy to stop (SIGTERM; it undoes what the session
    /// changed in the cluster, a copied target and its scaled-down workload, before it exits)
    /// and waits for it at most [`INTPROXY_END_GRACE`], then kills what is left, the agent last,
    /// and reaps both. Layers still connected see the agent lost; the agent's redirect rules go
    /// with it.
    pub fn end(&mut self) {
        if let Some(intproxy) = self.processes.intproxy.as_mut() {
            terminate(intproxy, INTPROXY_END_GRACE);
        }
        for child in [&mut self.processes.intproxy, &mut self.processes.agent] {
            if let Some(mut process) = child.take() {
                let _ = process.kill();
                let _ = process.wait();
            }
        }
    }
}

/// How long [`Session::end`] waits for the intproxy to finish after SIGTERM.
pub(crate) const INTPROXY_END_GRACE: Duration = Duration::from_secs(10);

/// SIGTERM to `child` (through kill(1): this crate has no `unsafe`), then waits until it exited
/// or `grace` passed.
fn terminate(child: &mut Child, grace: Duration) {
    let asked = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !asked {
        return;
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads a connection made by [`Session::connect_as_layer`] (that sends no requests) until the
/// intproxy says the agent is lost, and returns its message; `None` when the connection ends
/// first.
pub fn wait_for_agent_lost(connection: &mut TcpStream) -> Option<String> {
    while let Ok(message) = read_frame::<ProxyToLayer, _>(&mut *connection) {
        if let ProxyToLayer::AgentLost { message } = message {
            return Some(message);
        }
    }
    None
}

fn still_running(child: &mut Option<Child>) -> bool {
    match child.as_mut().map(Child::try_wait) {
        Some(Ok(None)) => true,
        Some(_) => {
            *child = None;
            false
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn session_at(intproxy_addr: SocketAddr, token: u8) -> Session {
        Session {
            token: SessionToken::from_bytes([token; 32]),
            intproxy_addr,
            agent_fd_socket: None,
            target_pid: None,
            agent_log: PathBuf::new(),
            intproxy_log: PathBuf::new(),
            processes: SessionProcesses::default(),
            notices: Vec::new(),
        }
    }

    /// An intproxy stand-in on loopback that reads one hello and answers it: welcome for the
    /// right token, refused otherwise. Returns the hello it read.
    fn answer_one_hello(right: SessionToken) -> (SocketAddr, std::thread::JoinHandle<Hello>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let hello: Hello = read_frame(&mut stream).unwrap();
            let reply = if hello.session_token.ct_eq(&right) {
                HelloReply::Welcome {
                    protocol_version: ProtocolVersion::CURRENT,
                }
            } else {
                HelloReply::Refused {
                    reason: "wrong session token".to_owned(),
                }
            };
            write_frame(&mut stream, &reply).unwrap();
            hello
        });
        (addr, server)
    }

    #[test]
    fn connects_as_a_layer_of_this_process_with_the_sessions_token() {
        let session = session_at("127.0.0.1:1".parse().unwrap(), 9);
        let (addr, server) = answer_one_hello(session.token.clone());
        let session = Session {
            intproxy_addr: addr,
            ..session
        };
        session
            .connect_as_layer(Duration::from_secs(30))
            .expect("welcomed");
        let hello = server.join().unwrap();
        assert!(
            matches!(hello.client, ClientKind::Layer { pid, parent_pid: None } if pid == std::process::id()),
            "{:?}",
            hello.client
        );
    }

    #[test]
    fn the_agent_lost_message_is_read_past_other_messages() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            write_frame(&mut stream, &ProxyToLayer::Pong { nonce: 7 }).unwrap();
            write_frame(
                &mut stream,
                &ProxyToLayer::AgentLost {
                    message: "agent connection closed".to_owned(),
                },
            )
            .unwrap();
            let (mut second, _) = listener.accept().unwrap();
            write_frame(&mut second, &ProxyToLayer::Pong { nonce: 8 }).unwrap();
        });
        let mut first = TcpStream::connect(addr).unwrap();
        assert_eq!(
            wait_for_agent_lost(&mut first).as_deref(),
            Some("agent connection closed")
        );
        let mut second = TcpStream::connect(addr).unwrap();
        server.join().unwrap();
        assert_eq!(wait_for_agent_lost(&mut second), None, "closed first");
    }

    #[test]
    fn a_refused_hello_names_the_intproxy_and_the_reason() {
        let (addr, server) = answer_one_hello(SessionToken::from_bytes([1; 32]));
        let error = session_at(addr, 2)
            .connect_as_layer(Duration::from_secs(30))
            .expect_err("refused");
        server.join().unwrap();
        assert!(
            matches!(&error, SessionError::LayerConnection { intproxy, message }
                if *intproxy == addr && message.contains("wrong session token")),
            "{error:?}"
        );
    }
}
