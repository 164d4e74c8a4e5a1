//! Work that must happen inside the target's namespaces.
//!
//! `setns` changes only the calling thread, so the agent keeps one dedicated OS thread that has
//! joined the target's network and UTS namespaces and never leaves them. The rest of the agent (the
//! tokio runtime) sends it small jobs — "create a socket", "read the hostname" — and gets the result
//! back. A socket belongs to the namespace it was created in for its whole life, so once created it is
//! used from any thread. Files never need this thread: they are opened relative to
//! `/proc/PID/root` (see [`crate::files`]).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::mpsc;

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send>;

/// A handle to the thread living in the target's namespaces.
#[derive(Debug, Clone)]
pub(crate) struct NamespaceWorker {
    jobs: mpsc::Sender<Job>,
}

/// Why the namespace thread could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NamespaceError {
    #[error("cannot open {path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot enter the target's {kind} namespace (is the agent running as root?)")]
    Enter {
        kind: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl NamespaceWorker {
    /// Starts the thread, joined to the network and UTS namespaces of `pid` (or staying in the
    /// agent's own namespaces when `pid` is `None`, for targetless sessions).
    pub(crate) fn start(pid: Option<u32>) -> Result<NamespaceWorker, NamespaceError> {
        let namespaces = match pid {
            None => Vec::new(),
            Some(pid) => [("net", libc::CLONE_NEWNET), ("uts", libc::CLONE_NEWUTS)]
                .into_iter()
                .map(|(kind, flag)| {
                    let path = format!("/proc/{pid}/ns/{kind}");
                    File::open(&path)
                        .map(|file| (kind, flag, file))
                        .map_err(|source| NamespaceError::Open { path, source })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("target-namespaces".to_owned())
            .spawn(move || {
                for (kind, flag, file) in namespaces {
                    // SAFETY: `file` is an open namespace file descriptor owned by this closure and
                    // `flag` names its type; setns only changes this thread's namespaces.
                    let result = unsafe { libc::setns(file.as_raw_fd(), flag) };
                    if result != 0 {
                        let source = std::io::Error::last_os_error();
                        let _ = ready_tx.send(Err(NamespaceError::Enter { kind, source }));
                        return;
                    }
                }
                let _ = ready_tx.send(Ok(()));
                while let Ok(job) = jobs_rx.recv() {
                    job();
                }
            })
            .map_err(|source| NamespaceError::Enter {
                kind: "thread",
                source,
            })?;
        ready_rx.recv().unwrap_or_else(|_| {
            Err(NamespaceError::Enter {
                kind: "thread",
                source: std::io::Error::other("the namespace thread died"),
            })
        })?;
        Ok(NamespaceWorker { jobs: jobs_tx })
    }

    /// Runs `job` on the namespace thread and returns its result.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<T> {
        let (result_tx, result_rx) = oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = result_tx.send(job());
            }))
            .map_err(|_| std::io::Error::other("the namespace thread is gone"))?;
        result_rx
            .await
            .map_err(|_| std::io::Error::other("the namespace thread is gone"))
    }

    /// Runs `job` on the namespace thread and waits for its result, from a thread outside the
    /// async runtime (the descriptor server's threads).
    pub(crate) fn run_blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> std::io::Result<T> {
        let (result_tx, result_rx) = mpsc::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = result_tx.send(job());
            }))
            .map_err(|_| std::io::Error::other("the namespace thread is gone"))?;
        result_rx
            .recv()
            .map_err(|_| std::io::Error::other("the namespace thread is gone"))
    }

    /// A new non-blocking, close-on-exec socket in the target's network namespace, from a thread
    /// outside the async runtime.
    pub(crate) fn socket_blocking(
        &self,
        domain: i32,
        socket_type: i32,
    ) -> std::io::Result<OwnedFd> {
        self.run_blocking(move || new_socket(domain, socket_type))?
    }

    /// A new non-blocking, close-on-exec socket in the target's network namespace.
    pub(crate) async fn socket(&self, domain: i32, socket_type: i32) -> std::io::Result<OwnedFd> {
        self.run(move || new_socket(domain, socket_type)).await?
    }

    /// A blocking, close-on-exec `NETLINK_NETFILTER` socket in the target's network namespace, for
    /// the redirect rules (see [`crate::incoming::nft`]).
    pub(crate) async fn netfilter_socket(&self) -> std::io::Result<OwnedFd> {
        self.netlink_socket(libc::NETLINK_NETFILTER).await
    }

    /// A blocking, close-on-exec `NETLINK_SOCK_DIAG` socket in the target's network namespace, for
    /// closing the target's connections (see [`crate::incoming::flush`]).
    pub(crate) async fn sock_diag_socket(&self) -> std::io::Result<OwnedFd> {
        self.netlink_socket(libc::NETLINK_SOCK_DIAG).await
    }

    /// A blocking, close-on-exec netlink socket of `protocol` in the target's network namespace,
    /// with a 5 s receive timeout.
    async fn netlink_socket(&self, protocol: libc::c_int) -> std::io::Result<OwnedFd> {
        self.run(move || {
            // SAFETY: plain socket(2) call with constant arguments; the result is checked below.
            let fd = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    protocol,
                )
            };
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            let timeout = libc::timeval {
                tv_sec: 5,
                tv_usec: 0,
            };
            // SAFETY: `timeout` is a valid timeval and its size is passed; the socket is open.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&raw const timeout).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                );
            }
            Ok(fd)
        })
        .await?
    }

    /// The hostname of the target's UTS namespace.
    pub(crate) async fn hostname(&self) -> std::io::Result<String> {
        self.run(|| {
            let mut buffer = [0u8; 256];
            // SAFETY: the buffer is valid for `buffer.len()` bytes; gethostname NUL-terminates within it.
            let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
            if result != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
            Ok(String::from_utf8_lossy(&buffer[..end]).into_owned())
        })
        .await?
    }
}

/// `socket(2)` in the calling thread's network namespace, non-blocking and close-on-exec.
fn new_socket(domain: i32, socket_type: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant flags; the result is checked below.
    let fd = unsafe {
        libc::socket(
            domain,
            socket_type | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
