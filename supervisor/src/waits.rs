//! Calls that wait for the network on a blocking socket and that the supervisor must serve itself
//! to change what they report: a blocking `accept`/`accept4` on a subscribed listener (the real
//! peer of a delivered connection, `peer.rs`) and a blocking `recvfrom` or `recvmsg` on a
//! socket whose datagrams come through relays (their real source, `udp.rs`). A worker must not wait for the
//! network, so it parks such a call with the waiter: one thread that sleeps in `poll` on every
//! parked call's socket and serves a call once its socket is readable, on an intproxy connection
//! of its own.
//!
//! The caller meanwhile waits in the kernel, where (`WAIT_KILLABLE_RECV`) only a fatal signal
//! reaches it. The waiter ends a parked call as the kernel would end the plain call:
//! - the caller is gone (its process exited or was killed): the call is dropped
//!   (`NOTIF_ID_VALID`);
//! - a signal is pending for the caller and not blocked (`/proc/TID/status`, read every
//!   [`TICK`] while calls are parked): the call is answered `CONTINUE`, so it runs in the kernel,
//!   sees the signal and returns `EINTR` or restarts (`SA_RESTART`) exactly as without mirrord;
//! - the socket's `SO_RCVTIMEO` passes: `EAGAIN`.
//!
//! At most [`MAX_PARKED`] calls are parked; beyond that a call runs in the kernel as is (and
//! reports the relay's address).

use std::{
    os::{
        fd::{AsFd, BorrowedFd, OwnedFd},
        unix::net::UnixDatagram,
    },
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    remote::Remote,
    serve::{Outcome, Shared, Worker},
    sys::{self, Notification},
};

/// How often parked calls are checked for signals.
const TICK: Duration = Duration::from_millis(50);

/// How many calls may be parked at once.
const MAX_PARKED: usize = 256;

/// What a parked call does once its socket is readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// `accept`/`accept4` with the real peer.
    Accept,
    /// `recvfrom` with the real source.
    Receive,
    /// `recvmsg` with the real source.
    ReceiveMessage,
    /// `recvmmsg` with the real sources.
    ReceiveMessages,
}

/// One parked call and the supervisor's copy of its socket.
#[derive(Debug)]
pub(crate) struct Wait {
    pub(crate) call: Notification,
    pub(crate) socket: OwnedFd,
    pub(crate) then: Then,
    deadline: Option<Instant>,
}

impl Wait {
    /// A call on `socket` that waits as long as the socket's `SO_RCVTIMEO` says.
    pub(crate) fn new(call: Notification, socket: OwnedFd, then: Then) -> Self {
        let deadline = sys::receive_timeout(socket.as_fd())
            .ok()
            .flatten()
            .map(|timeout| Instant::now() + timeout);
        Self {
            call,
            socket,
            then,
            deadline,
        }
    }
}

/// The calls handed to the waiter and the way to wake it.
#[derive(Debug, Default)]
pub(crate) struct Waits {
    handed: Mutex<Vec<Wait>>,
    wake: OnceLock<UnixDatagram>,
    parked: AtomicUsize,
}

impl Waits {
    /// Hands `wait` to the waiter: `Parked`, or `Continue` when the waiter is not running or full.
    pub(crate) fn park(&self, wait: Wait) -> Outcome {
        let Some(wake) = self.wake.get() else {
            return Outcome::Continue;
        };
        {
            let mut handed = self
                .handed
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            if handed.len() + self.parked.load(Ordering::Relaxed) >= MAX_PARKED {
                tracing::debug!("too many parked calls; this one runs in the kernel");
                return Outcome::Continue;
            }
            handed.push(wait);
        }
        // A full wake-up queue already wakes the waiter.
        let _ = wake.send(&[1]);
        Outcome::Parked
    }
}

/// Starts the waiter thread.
pub(crate) fn start(shared: &Arc<Shared>, turn: &Arc<crate::turn::Turn>) {
    let (reader, writer) = match UnixDatagram::pair() {
        Ok(pair) => pair,
        Err(error) => {
            tracing::error!(%error, "no waiter: blocking calls report the relays' addresses");
            return;
        }
    };
    if reader.set_nonblocking(true).is_err()
        || writer.set_nonblocking(true).is_err()
        || shared.waits.wake.set(writer).is_err()
    {
        return;
    }
    let mut worker = Worker {
        // The waiter never takes the turn: it answers parked calls, it does not receive.
        remote: Remote::new(
            shared.endpoints.clone(),
            crate::turn::TurnHolder::new(Arc::clone(turn)),
        ),
        hostname: None,
        shared: Arc::clone(shared),
    };
    let spawned = std::thread::Builder::new()
        .name("mirrord-supervisor-waiter".into())
        .spawn(move || worker.wait_loop(&reader));
    if let Err(error) = spawned {
        tracing::error!(%error, "cannot start the supervisor's waiter");
    }
}

impl Worker {
    fn wait_loop(&mut self, wake: &UnixDatagram) {
        let mut parked: Vec<Wait> = Vec::new();
        loop {
            let now = Instant::now();
            let timeout = (!parked.is_empty()).then(|| {
                parked
                    .iter()
                    .filter_map(|wait| wait.deadline)
                    .map(|deadline| deadline.saturating_duration_since(now))
                    .fold(TICK, Duration::min)
            });
            let sockets: Vec<BorrowedFd<'_>> = std::iter::once(wake.as_fd())
                .chain(parked.iter().map(|wait| wait.socket.as_fd()))
                .collect();
            if let Err(error) = sys::wait_readable(&sockets, timeout) {
                tracing::warn!(%error, "the waiter cannot poll");
                std::thread::sleep(TICK);
            }
            drop(sockets);
            while wake.recv(&mut [0u8; 64]).is_ok() {}
            parked.append(
                &mut self
                    .shared
                    .waits
                    .handed
                    .lock()
                    .unwrap_or_else(|poison| poison.into_inner()),
            );
            parked.retain(|wait| !self.progress(wait));
            self.shared
                .waits
                .parked
                .store(parked.len(), Ordering::Relaxed);
        }
    }

    /// The outcome of `call` once its socket is ready, as `then` says; `None` while the socket
    /// has nothing for it yet.
    pub(crate) fn serve_ready(
        &mut self,
        then: Then,
        call: &Notification,
        socket: BorrowedFd<'_>,
    ) -> Option<Outcome> {
        match then {
            Then::Accept => self.accept_ready(call, socket),
            Then::Receive => self.receive_ready(call, socket),
            Then::ReceiveMessage => self.receive_message_ready(call, socket),
            Then::ReceiveMessages => self.receive_messages_ready(call, socket),
        }
    }

    /// Serves or ends `wait` if it can; `true` when it is done.
    fn progress(&mut self, wait: &Wait) -> bool {
        let call = &wait.call;
        if !self.shared.listener.id_valid(call.id) {
            return true;
        }
        let served = self.serve_ready(wait.then, call, wait.socket.as_fd());
        let outcome = if let Some(outcome) = served {
            outcome
        } else if wait
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            Outcome::Fail(libc::EAGAIN)
        } else if signal_pending(call.pid) {
            Outcome::Continue
        } else {
            return false;
        };
        self.answer(call, outcome);
        true
    }
}

/// Whether thread `tid` has a signal pending that it does not block.
fn signal_pending(tid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{tid}/status")) else {
        return false;
    };
    let mask = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|value| u64::from_str_radix(value.trim(), 16).ok())
            .unwrap_or(0)
    };
    (mask("SigPnd:") | mask("ShdPnd:")) & !mask("SigBlk:") != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_without_pending_signals_has_none() {
        assert!(!signal_pending(std::process::id()));
        assert!(!signal_pending(u32::MAX));
    }
}
