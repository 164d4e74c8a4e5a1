//! The supervisor's workers: a few threads taking turns at the one listener (`turn.rs`: one of them
//! in `NOTIF_RECV` at a time). The kernel hands each intercepted call to exactly one of them; the
//! worker decides, does any remote work on its own connections, and answers the call by its id. A
//! call's answer can therefore never reach another call, whatever the number of threads in the
//! program.

use std::{os::fd::AsFd, sync::Arc};

use crate::{
    fs_policy::FsPolicy,
    incoming::Incoming,
    net::OutgoingPolicy,
    placeholders::Placeholders,
    remote::{Endpoints, Remote},
    sys::{Listener, Notification},
    turn::{Turn, TurnHolder},
};

/// How many calls are served at the same time (each waits at most for one remote answer).
pub(crate) const WORKERS: usize = 8;

/// What all workers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) listener: Listener,
    /// `None` when files stay local (`fs.mode: local`).
    pub(crate) policy: Option<FsPolicy>,
    /// `None` when no outgoing traffic goes through the target.
    pub(crate) outgoing: Option<OutgoingPolicy>,
    /// `None` when incoming traffic is off.
    pub(crate) incoming: Option<Incoming>,
    pub(crate) placeholders: Placeholders,
    pub(crate) endpoints: Endpoints,
    /// Ports the program's processes listen on here (TCP), seen at `listen`.
    pub(crate) local_listeners: std::sync::Mutex<std::collections::HashSet<u16>>,
    /// Executable names (`skip_processes`) whose calls run untouched: a debugger that runs the
    /// program as its child (`dlv`) and the tools it starts keep this machine's view.
    pub(crate) skipped: Vec<String>,
    /// Calls parked until their socket is readable (`waits.rs`).
    pub(crate) waits: crate::waits::Waits,
    /// Connections placed with their real peer, for `getpeername` (`peer.rs`).
    pub(crate) placed: crate::peer::Placed,
}

impl Shared {
    /// Whether the calling thread `tid` belongs to a process the config skips, by the file name
    /// of its executable (as the layer matches `skip_processes`). A caller that is gone is not
    /// skipped.
    pub(crate) fn skips(&self, tid: u32) -> bool {
        if self.skipped.is_empty() {
            return false;
        }
        std::fs::read_link(format!("/proc/{tid}/exe")).is_ok_and(|executable| {
            executable
                .file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| self.skipped.iter().any(|skipped| skipped == name))
        })
    }

    /// Whether a process of the session listens on TCP `port` on this machine.
    pub(crate) fn session_listens(&self, port: u16) -> bool {
        self.local_listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&port)
    }
}

/// The answer to one call.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Run the call in the kernel as is.
    Continue,
    /// Return -1 with this errno.
    Fail(i32),
    /// Return this value.
    Value(i64),
    /// Place this descriptor in the caller and return its number.
    Descriptor {
        fd: std::os::fd::OwnedFd,
        cloexec: bool,
    },
    /// The caller is gone (killed while waiting): nothing to answer.
    Gone,
    /// The waiter answers it once its socket is readable (`waits.rs`).
    Parked,
}

/// One worker thread's state.
#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) shared: Arc<Shared>,
    pub(crate) remote: Remote,
    /// The target's hostname, once asked.
    pub(crate) hostname: Option<String>,
}

/// Starts the workers; they run until the listener has no more callers.
pub(crate) fn start(shared: Arc<Shared>) {
    shared.listener.request_sync_wake_up();
    let turn = Arc::new(Turn::default());
    crate::waits::start(&shared, &turn);
    for index in 0..WORKERS {
        let mut worker = Worker {
            remote: Remote::new(shared.endpoints.clone(), TurnHolder::new(Arc::clone(&turn))),
            hostname: None,
            shared: Arc::clone(&shared),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("mirrord-supervisor-{index}"))
            .spawn(move || worker.run());
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start a supervisor thread");
        }
    }
}

impl Worker {
    fn run(&mut self) {
        loop {
            self.remote.turn.take();
            let call = match self.shared.listener.receive() {
                Ok(call) => call,
                Err(error) if matches!(error.raw_os_error(), Some(libc::EINTR | libc::ENOENT)) => {
                    continue;
                }
                Err(error) => {
                    tracing::debug!(%error, "the listener is closed; the worker ends");
                    // The next worker finds it closed too, and so on.
                    self.remote.turn.pass();
                    return;
                }
            };
            let outcome = self.handle(&call);
            self.answer(&call, outcome);
        }
    }

    fn handle(&mut self, call: &Notification) -> Outcome {
        if call.arch != crate::filter::AUDIT_ARCH_X86_64 || self.shared.skips(call.pid) {
            return Outcome::Continue;
        }
        // File calls keep the turn until they need the target (`Remote` passes it then): most
        // name a path the policy keeps local, decided here in a few microseconds. The network's
        // calls can wait on a socket or on each other (an `accept` for a `connect` of the same
        // program), so they pass it at once.
        if !crate::filter::FILE_CALLS.contains(&libc::c_long::from(call.nr)) {
            self.remote.turn.pass();
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match libc::c_long::from(call.nr) {
                libc::SYS_connect => self.connect(call),
                libc::SYS_uname => self.uname(call),
                libc::SYS_listen => self.listen(call),
                libc::SYS_bind => self.bind(call),
                libc::SYS_accept | libc::SYS_accept4 => match self.accept(call) {
                    Outcome::Continue => self.accept_blocking(call),
                    outcome => outcome,
                },
                libc::SYS_getpeername => self.getpeername(call),
                libc::SYS_sendto => self.sendto(call),
                libc::SYS_recvfrom => self.recvfrom(call),
                libc::SYS_recvmsg => self.recvmsg(call),
                libc::SYS_recvmmsg => self.recvmmsg(call),
                libc::SYS_sendmsg => self.sendmsg(call),
                libc::SYS_sendmmsg => self.sendmmsg(call),
                _ => self.file_call(call).unwrap_or(Outcome::Continue),
            }
        }));
        outcome.unwrap_or_else(|_| {
            tracing::error!(
                nr = call.nr,
                "a system call's handler panicked; the call fails with EIO"
            );
            Outcome::Fail(libc::EIO)
        })
    }

    pub(crate) fn answer(&self, call: &Notification, outcome: Outcome) {
        let listener = &self.shared.listener;
        let result = match outcome {
            Outcome::Continue => listener.continue_call(call.id),
            Outcome::Fail(errno) => listener.fail(call.id, errno),
            Outcome::Value(value) => listener.answer(call.id, value),
            Outcome::Descriptor { fd, cloexec } => {
                listener.send_fd(call.id, fd.as_fd(), cloexec).map(drop)
            }
            Outcome::Gone | Outcome::Parked => Ok(()),
        };
        if let Err(error) = result {
            // ENOENT: the caller died meanwhile. Anything else would be our bug.
            if error.raw_os_error() != Some(libc::ENOENT) {
                tracing::warn!(%error, nr = call.nr, "cannot answer an intercepted call");
            }
        }
    }
}
