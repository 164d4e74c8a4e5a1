//! File requests, with read-ahead for files that are read from start to end.
//!
//! Every read of a streamed file is a round trip layer → intproxy → agent and back, and the process
//! waits for each one. When a handle opened read-only is read sequentially (two reads in a row that
//! came back full), the intproxy asks the agent for the next chunk of the same length as soon as it
//! has answered the current one, so that the agent's side of the trip overlaps with the process
//! consuming the chunk. The next read is served from that chunk.
//!
//! Every layer of the session reaches the agent through this one intproxy, so the bytes read ahead
//! are accounted for in one place and a file's position stays shared the way a kernel file's offset
//! is (a forked child reading the same descriptor continues where its parent stopped):
//! - at most one request per handle is in flight at a time (a per-handle lock held by the
//!   read-ahead), so the agent sees this handle's reads in order;
//! - `lseek(SEEK_CUR)` is moved back by the bytes read ahead, any `lseek` drops them;
//! - a read-ahead that failed buffers nothing: the next read asks again and gets the error itself;
//! - all handles together hold at most [`BUDGET`] bytes ahead (about: a read-ahead checks it when it
//!   starts).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use mirrord_protocol::agent_channel::{AgentRequest, AgentResponse};
use mirrord_protocol::files::{FileRequest, FileResponse, Whence};
use mirrord_protocol::ids::FileHandle;
use mirrord_protocol::{Bytes, RemoteResult};
use tokio::sync::Mutex as AsyncMutex;

use crate::agent_link::AgentLink;
use crate::layer_session::unexpected;

/// The most bytes read ahead and not yet taken, over all handles of the session.
const BUDGET: usize = 64 * 1024 * 1024;

/// The session's file requests.
pub(crate) struct Files {
    link: Arc<AgentLink>,
    /// The handles opened read-only, each with what was read ahead of its position.
    handles: Mutex<HashMap<FileHandle, Arc<AsyncMutex<Ahead>>>>,
    /// Bytes read ahead over all handles.
    held: Arc<AtomicUsize>,
}

/// What the agent read past the position the process sees, for one handle.
struct Ahead {
    bytes: Vec<u8>,
    start: usize,
    /// The length of the previous read on this handle, when it came back full and no other request
    /// on the handle came after it.
    streak: Option<u32>,
    held: Arc<AtomicUsize>,
}

impl Ahead {
    fn new(held: Arc<AtomicUsize>) -> Self {
        Ahead {
            bytes: Vec::new(),
            start: 0,
            streak: None,
            held,
        }
    }

    fn buffered(&self) -> usize {
        self.bytes.len() - self.start
    }

    /// Takes up to `len` bytes from the front.
    fn take(&mut self, len: usize) -> Vec<u8> {
        let count = len.min(self.buffered());
        let taken = if self.start == 0 && count == self.bytes.len() {
            std::mem::take(&mut self.bytes)
        } else {
            let taken = self.bytes[self.start..self.start + count].to_vec();
            self.start += count;
            if self.start == self.bytes.len() {
                self.bytes = Vec::new();
                self.start = 0;
            }
            taken
        };
        self.held.fetch_sub(count, Ordering::Relaxed);
        taken
    }

    /// Drops what was read ahead and the streak; returns how many bytes were dropped.
    fn clear(&mut self) -> usize {
        let dropped = self.buffered();
        self.held.fetch_sub(dropped, Ordering::Relaxed);
        self.bytes = Vec::new();
        self.start = 0;
        self.streak = None;
        dropped
    }

    /// Replaces what was read ahead with `bytes` (the streak stays).
    fn fill(&mut self, bytes: Vec<u8>) {
        self.held.fetch_sub(self.buffered(), Ordering::Relaxed);
        self.held.fetch_add(bytes.len(), Ordering::Relaxed);
        self.bytes = bytes;
        self.start = 0;
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        self.held.fetch_sub(self.buffered(), Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Files {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Files")
            .field("held", &self.held.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Files {
    pub(crate) fn new(link: Arc<AgentLink>) -> Self {
        Files {
            link,
            handles: Mutex::default(),
            held: Arc::default(),
        }
    }

    /// Serves one file request of a layer.
    pub(crate) async fn request(&self, request: FileRequest) -> RemoteResult<FileResponse> {
        match request {
            FileRequest::Open { flags, .. } if flags.read && !flags.write && !flags.directory => {
                let response = forward(&self.link, request).await?;
                if let FileResponse::Opened(handle) = response {
                    let ahead = Ahead::new(Arc::clone(&self.held));
                    self.handles()
                        .insert(handle, Arc::new(AsyncMutex::new(ahead)));
                }
                Ok(response)
            }
            FileRequest::Read { handle, len } => match self.tracked(handle) {
                Some(ahead) => self.read(ahead, handle, len).await,
                None => forward(&self.link, request).await,
            },
            FileRequest::Lseek {
                handle,
                offset,
                whence,
            } => {
                let Some(ahead) = self.tracked(handle) else {
                    return forward(&self.link, request).await;
                };
                // Held until the agent answered, so no read-ahead moves the position meanwhile.
                let mut ahead = ahead.lock().await;
                let dropped = i64::try_from(ahead.clear()).unwrap_or(i64::MAX);
                let offset = match whence {
                    Whence::Current => offset.saturating_sub(dropped),
                    _ => offset,
                };
                let request = FileRequest::Lseek {
                    handle,
                    offset,
                    whence,
                };
                forward(&self.link, request).await
            }
            FileRequest::Close { handle } => {
                let removed = self.handles().remove(&handle);
                if let Some(ahead) = removed {
                    ahead.lock().await.clear();
                }
                forward(&self.link, request).await
            }
            other => forward(&self.link, other).await,
        }
    }

    /// A read on a handle opened read-only.
    async fn read(
        &self,
        ahead: Arc<AsyncMutex<Ahead>>,
        handle: FileHandle,
        len: u32,
    ) -> RemoteResult<FileResponse> {
        let mut guard = ahead.lock_owned().await;
        let wanted = len as usize;
        let mut bytes = guard.take(wanted);
        if bytes.len() < wanted {
            let rest = u32::try_from(wanted - bytes.len()).unwrap_or(u32::MAX);
            match forward(&self.link, FileRequest::Read { handle, len: rest }).await {
                Ok(FileResponse::Read(more)) => bytes.extend_from_slice(&more.0),
                Ok(other) => return Err(unexpected(&AgentResponse::File(other))),
                // What was read ahead is the answer; the error comes again on the next read.
                Err(_) if !bytes.is_empty() => {}
                Err(error) => {
                    guard.streak = None;
                    return Err(error);
                }
            }
        }
        let full = wanted > 0 && bytes.len() == wanted;
        let sequential = full && guard.streak.is_some();
        guard.streak = full.then_some(len);
        // Only once the process has taken everything read so far.
        if sequential
            && guard.buffered() == 0
            && self.held.load(Ordering::Relaxed) + wanted <= BUDGET
        {
            let link = Arc::clone(&self.link);
            tokio::spawn(async move {
                if let Ok(FileResponse::Read(next)) =
                    forward(&link, FileRequest::Read { handle, len }).await
                {
                    guard.fill(next.into_vec());
                }
                // Dropping the guard lets the next request on the handle in.
            });
        }
        Ok(FileResponse::Read(Bytes::from(bytes)))
    }

    fn tracked(&self, handle: FileHandle) -> Option<Arc<AsyncMutex<Ahead>>> {
        self.handles().get(&handle).cloned()
    }

    fn handles(&self) -> std::sync::MutexGuard<'_, HashMap<FileHandle, Arc<AsyncMutex<Ahead>>>> {
        self.handles.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sends a file request to the agent as it is.
async fn forward(link: &AgentLink, request: FileRequest) -> RemoteResult<FileResponse> {
    match link.request(AgentRequest::File(request)).await.result? {
        AgentResponse::File(response) => Ok(response),
        other => Err(unexpected(&other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ahead_serves_in_order_and_keeps_the_session_count() {
        let held = Arc::new(AtomicUsize::new(0));
        let mut ahead = Ahead::new(Arc::clone(&held));
        ahead.streak = Some(6);
        ahead.fill(b"abcdef".to_vec());
        assert_eq!(ahead.streak, Some(6));
        assert_eq!(held.load(Ordering::Relaxed), 6);
        assert_eq!(ahead.take(2), b"ab");
        assert_eq!(ahead.buffered(), 4);
        assert_eq!(held.load(Ordering::Relaxed), 4);
        assert_eq!(ahead.take(10), b"cdef");
        assert_eq!(ahead.buffered(), 0);
        assert_eq!(held.load(Ordering::Relaxed), 0);

        ahead.fill(b"xyz".to_vec());
        ahead.streak = Some(3);
        assert_eq!(ahead.clear(), 3);
        assert_eq!(ahead.streak, None);
        assert_eq!(held.load(Ordering::Relaxed), 0);

        ahead.fill(b"left over".to_vec());
        drop(ahead);
        assert_eq!(held.load(Ordering::Relaxed), 0);
    }
}
