//! Relays for unix stream connections to the target's sockets (`outgoing.unix_streams`) when the
//! agent is not on this machine: the agent connects to the socket inside the target, and the
//! intproxy listens on a unix socket of its own that the layer (or the supervisor) connects the
//! process's socket to. The process's socket stays an `AF_UNIX` stream, so its reads and writes
//! are plain system calls, as with the TCP relays.
//!
//! The listeners live in one directory per intproxy, made on first use with mode 0700 (only the
//! session's user reaches them) under `$XDG_RUNTIME_DIR`, else the temporary directory; each
//! socket file is removed as soon as its one connection is accepted (or the process never came),
//! and the directory when the intproxy ends.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use mirrord_protocol::agent_channel::ClientToAgent;
use mirrord_protocol::files::TargetPath;
use mirrord_protocol::ids::ConnectionId;
use mirrord_protocol::outgoing::OutgoingUnixConnected;
use mirrord_protocol::{RemoteError, RemoteResult};
use tokio::net::UnixListener;
use tokio::sync::mpsc;

use crate::agent_link::{AgentLink, RelayEvent};
use crate::pump;
use crate::relay::{ACCEPT_TIMEOUT, close_outgoing};

/// The longest path a `sockaddr_un` holds (with its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The intproxy's directory of unix relay sockets, made on first use and removed when dropped.
#[derive(Debug, Default)]
pub(crate) struct UnixRelays {
    dir: Mutex<Option<PathBuf>>,
    next: AtomicU64,
}

impl UnixRelays {
    /// A fresh socket path in the directory (made now if it does not exist yet).
    fn next_path(&self) -> io::Result<PathBuf> {
        let mut dir = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
        if dir.is_none() {
            *dir = Some(make_private_dir()?);
        }
        let number = self.next.fetch_add(1, Ordering::Relaxed);
        let path = dir
            .as_ref()
            .map(|dir| dir.join(format!("{number}.sock")))
            .ok_or_else(|| io::Error::other("no relay directory"))?;
        Ok(path)
    }
}

impl Drop for UnixRelays {
    fn drop(&mut self) {
        let dir = self.dir.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(dir) = dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Makes `mirrord-intproxy-PID-N` (mode 0700, never an existing one) under the runtime directory,
/// or the temporary directory when that is unset or its paths would be too long for a socket.
fn make_private_dir() -> io::Result<PathBuf> {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute() && dir.is_dir());
    let bases = runtime
        .into_iter()
        .chain([std::env::temp_dir(), PathBuf::from("/tmp")]);
    let mut last = io::Error::other("no directory for the unix relays");
    for base in bases {
        for attempt in 0..8u32 {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|elapsed| elapsed.subsec_nanos())
                .unwrap_or(attempt);
            let dir = base.join(format!(
                "mirrord-intproxy-{}-{:x}",
                std::process::id(),
                nanos ^ attempt
            ));
            // Room for `/NNNNNNNNNN.sock`.
            if dir.as_os_str().len() + 16 > MAX_SOCKET_PATH {
                break;
            }
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(dir),
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => last = error,
                Err(error) => {
                    last = error;
                    break;
                }
            }
        }
    }
    Err(last)
}

/// Listens on a fresh unix socket for the one agent connection `connection_id` and relays once the
/// user connects; the answer names the socket.
pub(crate) async fn start(
    link: Arc<AgentLink>,
    relays: Arc<UnixRelays>,
    connection_id: ConnectionId,
    events: mpsc::UnboundedReceiver<RelayEvent>,
) -> RemoteResult<OutgoingUnixConnected> {
    let listener = relays
        .next_path()
        .and_then(|path| UnixListener::bind(&path).map(|listener| (listener, path)));
    let (listener, path) = match listener {
        Ok(bound) => bound,
        Err(error) => {
            link.forget_tcp(connection_id.0);
            link.send(ClientToAgent::OutgoingClose { connection_id })
                .await;
            return Err(RemoteError::from(&error));
        }
    };
    let intproxy_path = TargetPath::from_bytes(path.as_os_str().as_encoded_bytes());
    tokio::spawn(async move {
        let accepted = tokio::time::timeout(ACCEPT_TIMEOUT, listener.accept()).await;
        remove_socket(&path);
        drop(listener);
        let _relays = relays;
        let stream = match accepted {
            Ok(Ok((stream, _))) => stream,
            _ => {
                tracing::debug!(
                    ?connection_id,
                    "the user process never connected to its unix relay"
                );
                close_outgoing(&link, connection_id).await;
                return;
            }
        };
        let halves = stream.into_split();
        pump::connection(&link, pump::Stream::Outgoing, connection_id, halves, events).await;
        close_outgoing(&link, connection_id).await;
    });
    Ok(OutgoingUnixConnected { intproxy_path })
}

fn remove_socket(path: &Path) {
    if let Err(error) = std::fs::remove_file(path) {
        tracing::debug!(%error, path = %path.display(), "a unix relay socket was not removed");
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn the_directory_is_private_short_enough_and_removed_with_the_relays() {
        let relays = UnixRelays::default();
        let first = relays.next_path().unwrap();
        let second = relays.next_path().unwrap();
        assert_ne!(first, second);
        assert!(first.as_os_str().len() <= MAX_SOCKET_PATH, "{first:?}");
        let dir = first.parent().unwrap().to_owned();
        assert_eq!(second.parent(), Some(dir.as_path()));
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{dir:?}");
        drop(relays);
        assert!(!dir.exists(), "{dir:?} is left behind");
    }
}
