//! The registry of remote files: id → the file opened on the target (its handle, its path, its
//! placeholder's identity, its read-ahead buffer) and how many fds refer to it. `dup`s share an entry
//! (reference counted); the last `close` releases the handle on the target.
//!
//! Every operation on a tracked fd first checks that the fd still is the placeholder it was (same device
//! and inode): an fd closed behind the layer's back (a raw system call) and reused for a local file is
//! then noticed and forgotten instead of being read remotely.

use std::{
    any::Any,
    collections::BTreeMap,
    mem::MaybeUninit,
    os::fd::RawFd,
    sync::{
        Arc, Mutex, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use mirrord_protocol::{
    ErrorCode, FileHandle, MAX_IO_CHUNK, RemoteError,
    files::{FileRequest, FileResponse, Metadata, TargetPath, Whence},
};

use super::unexpected_file;
use crate::{
    connection::file_request,
    detour::lock,
    fd_table::{FDS, FdEntry},
    process,
};

/// A file opened on the target, shared by every fd that `dup`s its placeholder.
#[derive(Debug)]
pub(crate) struct RemoteFile {
    /// The agent's handle.
    pub(super) handle: FileHandle,
    /// The path on the target (for `fdopendir` and `*at` calls relative to a directory).
    pub(super) path: TargetPath,
    /// Device and inode of the placeholder.
    pub(super) placeholder_dev: AtomicU64,
    pub(super) placeholder_ino: AtomicU64,
    /// The process that opened it; only that process closes the handle.
    pub(super) owner_pid: u32,
    /// Bytes read ahead (files opened read-only), and how many to ask for at least.
    pub(super) read_ahead: Option<(Mutex<ReadAhead>, usize)>,
}

/// Bytes the agent sent beyond what a `read` asked for.
#[derive(Debug, Default)]
pub(super) struct ReadAhead {
    bytes: Vec<u8>,
    start: usize,
}

impl ReadAhead {
    fn buffered(&self) -> usize {
        self.bytes.len() - self.start
    }

    fn take(&mut self, len: usize) -> Vec<u8> {
        let end = self.start + len.min(self.buffered());
        let taken = self.bytes[self.start..end].to_vec();
        self.start = end;
        if self.start == self.bytes.len() {
            self.bytes.clear();
            self.start = 0;
        }
        taken
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.start = 0;
    }
}

/// The registry of remote files: id → the file and how many fds refer to it.
struct Registry {
    next_id: u32,
    files: BTreeMap<u32, (Arc<RemoteFile>, usize)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next_id: 1,
    files: BTreeMap::new(),
});

/// Held (shared) by every use of a read-ahead buffer, and (exclusively) across a `fork`.
///
/// The read-ahead buffer is per process, its lock is held across a round trip to the intproxy, and the
/// file position is shared with a forked child (the intproxy's handle is the session's, like a kernel
/// file offset). So before a fork no read may be half done (the child would start with a buffer lock
/// that nobody releases), and bytes left in the parent's buffer would be read by both processes: taking
/// this lock exclusively waits for reads in progress, then the buffered bytes are given back (the
/// position moved back by as much) and the buffers emptied.
static READS: RwLock<()> = RwLock::new(());

/// What a `fork` holds (see [`crate::process`]): every read-ahead buffer quiet and empty, then the
/// registry lock. Reads take [`READS`] after looking their file up, never while holding the registry.
pub(crate) fn lock_for_fork() -> Box<dyn Any> {
    let reads = READS.write().unwrap_or_else(PoisonError::into_inner);
    let files: Vec<Arc<RemoteFile>> = lock(&REGISTRY)
        .files
        .values()
        .map(|(file, _)| Arc::clone(file))
        .collect();
    for file in files {
        file.give_back_read_ahead();
    }
    Box::new((reads, lock(&REGISTRY)))
}

pub(super) fn register(file: RemoteFile) -> u32 {
    let mut registry = lock(&REGISTRY);
    let id = registry.next_id;
    registry.next_id = registry.next_id.wrapping_add(1).max(1);
    registry.files.insert(id, (Arc::new(file), 1));
    id
}

pub(super) fn lookup(id: u32) -> Option<Arc<RemoteFile>> {
    lock(&REGISTRY).files.get(&id).map(|(file, _)| file.clone())
}

pub(super) fn add_reference(id: u32) {
    if let Some((_, references)) = lock(&REGISTRY).files.get_mut(&id) {
        *references += 1;
    }
}

/// Drops one fd's reference; the last one closes the handle on the target.
pub(super) fn release(id: u32) {
    let released = {
        let mut registry = lock(&REGISTRY);
        match registry.files.get_mut(&id) {
            Some((_, references)) if *references > 1 => {
                *references -= 1;
                None
            }
            Some(_) => registry.files.remove(&id).map(|(file, _)| file),
            None => None,
        }
    };
    if let Some(file) = released
        && file.owner_pid == process::pid()
        && let Err(error) = file_request(FileRequest::Close {
            handle: file.handle,
        })
    {
        tracing::debug!(%error, path = %file.path, "closing a remote file failed");
    }
}

/// Forgets what the table said about `fd` after the fd itself went away (or was replaced).
pub(crate) fn forget_entry(fd: RawFd, entry: FdEntry) {
    match entry {
        FdEntry::RemoteFile(id) => release(id),
        FdEntry::Socket(info) if info.managed => crate::net::forget(fd),
        FdEntry::Socket(_) | FdEntry::LayerConnection => {}
    }
}

/// Records `entry` for `fd` (a new fd sharing what another fd is), releasing whatever was stale there.
pub(super) fn share(fd: RawFd, entry: FdEntry, source_fd: RawFd) {
    match entry {
        FdEntry::RemoteFile(id) => add_reference(id),
        FdEntry::Socket(info) if info.managed => crate::net::copy_state(source_fd, fd),
        FdEntry::Socket(_) => {}
        // A duplicate of the layer's socket belongs to the user program.
        FdEntry::LayerConnection => return,
    }
    match FDS.set(fd, entry) {
        Ok(Some(stale)) => forget_entry(fd, stale),
        Ok(None) => {}
        Err(_) => {
            tracing::warn!(
                fd,
                "fd beyond the layer's table; its duplicate is not tracked"
            );
            if let FdEntry::RemoteFile(id) = entry {
                release(id);
            }
        }
    }
}

/// The remote file behind `fd` after checking that `fd` still is its placeholder; a stale entry is
/// forgotten (and `None` returned).
pub(super) fn verified(fd: RawFd, id: u32) -> Option<Arc<RemoteFile>> {
    let file = lookup(id);
    let identity = placeholder_identity(fd);
    if let Some(file) = file
        && identity
            == Some((
                file.placeholder_dev.load(Ordering::Acquire),
                file.placeholder_ino.load(Ordering::Acquire),
            ))
    {
        return Some(file);
    }
    if FDS.replace_if(fd, FdEntry::RemoteFile(id), None) {
        tracing::debug!(
            fd,
            "forgetting a remote file whose fd was closed behind the layer's back"
        );
        release(id);
    }
    None
}

/// Device and inode of an open fd (the real one: the guard is held, so `fstat` reaches libc).
pub(super) fn placeholder_identity(fd: RawFd) -> Option<(u64, u64)> {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `stat` is a writable `struct stat`; fstat(2) fills it on success.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so the struct is initialised.
    let stat = unsafe { stat.assume_init() };
    Some((stat.st_dev, stat.st_ino))
}

/// A length for one read request.
pub(super) fn chunk(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX).min(MAX_IO_CHUNK)
}

pub(super) fn metadata_of(
    response: Result<FileResponse, RemoteError>,
) -> Result<Metadata, RemoteError> {
    match response? {
        FileResponse::Metadata(metadata) => Ok(metadata),
        other => Err(unexpected_file(&other)),
    }
}

impl RemoteFile {
    /// Reads up to `len` bytes at the file position, through the read-ahead buffer when there is one.
    pub(super) fn read(&self, len: usize) -> Result<Vec<u8>, RemoteError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let Some((ahead, size)) = &self.read_ahead else {
            return self.request_bytes(FileRequest::Read {
                handle: self.handle,
                len: chunk(len),
            });
        };
        let _reads = READS.read().unwrap_or_else(PoisonError::into_inner);
        let mut ahead = lock(ahead);
        let mut bytes = ahead.take(len);
        if bytes.len() == len {
            return Ok(bytes);
        }
        // The rest comes from the agent, so that a read of a regular file is short only at its end
        // (some programs take a short read for the end of the file).
        let wanted = len - bytes.len();
        let mut more = match self.request_bytes(FileRequest::Read {
            handle: self.handle,
            len: chunk(wanted.max(*size)),
        }) {
            Ok(more) => more,
            // What was buffered is the answer; the error comes again on the next read.
            Err(_) if !bytes.is_empty() => return Ok(bytes),
            Err(error) => return Err(error),
        };
        if more.len() > wanted {
            ahead.bytes = more.split_off(wanted);
            ahead.start = 0;
        }
        if bytes.is_empty() {
            return Ok(more);
        }
        bytes.extend_from_slice(&more);
        Ok(bytes)
    }

    /// Empties the read-ahead buffer, moving the position back by what it held (see
    /// [`lock_for_fork`]).
    fn give_back_read_ahead(&self) {
        let Some((ahead, _)) = &self.read_ahead else {
            return;
        };
        let mut ahead = lock(ahead);
        let buffered = ahead.buffered();
        if buffered == 0 {
            return;
        }
        ahead.clear();
        if process::in_borrowed_memory() {
            return;
        }
        if let Err(error) = file_request(FileRequest::Lseek {
            handle: self.handle,
            offset: -i64::try_from(buffered).unwrap_or(i64::MAX),
            whence: Whence::Current,
        }) {
            tracing::debug!(%error, path = %self.path, "giving back read-ahead before a fork failed");
        }
    }

    pub(super) fn request_bytes(&self, request: FileRequest) -> Result<Vec<u8>, RemoteError> {
        match file_request(request)? {
            FileResponse::Read(bytes) => Ok(bytes.into_vec()),
            other => Err(unexpected_file(&other)),
        }
    }

    pub(super) fn written(&self, request: FileRequest) -> Result<isize, RemoteError> {
        match file_request(request)? {
            FileResponse::Written(count) => Ok(isize::try_from(count).unwrap_or(isize::MAX)),
            other => Err(unexpected_file(&other)),
        }
    }

    /// Moves the file position, accounting for bytes read ahead (the agent's position is past them).
    pub(super) fn seek(&self, offset: i64, whence: Whence) -> Result<i64, RemoteError> {
        let mut offset = offset;
        let _reads = self
            .read_ahead
            .as_ref()
            .map(|_| READS.read().unwrap_or_else(PoisonError::into_inner));
        if let Some((ahead, _)) = &self.read_ahead {
            let mut ahead = lock(ahead);
            if whence == Whence::Current {
                offset -= i64::try_from(ahead.buffered()).unwrap_or(i64::MAX);
            }
            ahead.clear();
        }
        match file_request(FileRequest::Lseek {
            handle: self.handle,
            offset,
            whence,
        })? {
            FileResponse::Position(position) => i64::try_from(position)
                .map_err(|_| RemoteError::new(ErrorCode::InvalidInput, "position out of range")),
            other => Err(unexpected_file(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_ahead_serves_in_order_and_empties() {
        let mut ahead = ReadAhead {
            bytes: b"abcdef".to_vec(),
            start: 0,
        };
        assert_eq!(ahead.take(2), b"ab");
        assert_eq!(ahead.buffered(), 4);
        assert_eq!(ahead.take(10), b"cdef");
        assert_eq!(ahead.buffered(), 0);
        assert!(ahead.bytes.is_empty());
    }
}
