//! A running session: what the user process needs to reach it (the intproxy's address, the
//! token, the agent's descriptor socket), where its logs are, and its helper processes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Child;

use mirrord_protocol::token::SessionToken;

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

    /// Ends the session now: kills the intproxy, then the agent, and reaps both. Layers still
    /// connected see the agent lost; the agent's redirect rules go with it.
    pub fn end(&mut self) {
        for child in [&mut self.processes.intproxy, &mut self.processes.agent] {
            if let Some(mut process) = child.take() {
                let _ = process.kill();
                let _ = process.wait();
            }
        }
    }
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
