//! Directory streams on the target: `opendir`/`fdopendir` give the process a real `DIR*` (of a private
//! empty directory) that the layer maps to the agent's directory handle; `readdir` hands out the target's
//! entries, fetched in batches, from a `struct dirent64` kept per stream (valid until the next `readdir`
//! or `closedir` on that stream, as POSIX says).

use std::{
    any::Any,
    collections::{BTreeMap, VecDeque},
    ffi::{CStr, c_int},
    os::fd::RawFd,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use mirrord_protocol::{
    DirHandle,
    files::{DirEntry, FileRequest, FileResponse},
};

use super::{
    Resolved, empty_directory, forget_entry, open_remote,
    registry::{RemoteFile, placeholder_identity, verified},
    remote, resolve, unexpected_file,
};
use crate::{
    connection::file_request,
    detour::{Outcome, errno, lock},
    fd_table::{FDS, FdEntry},
    fs_policy::Intent,
    process,
};

/// How many entries to ask for at a time.
const BATCH: u32 = 256;

// `readdir` and `readdir64` are served from the same buffer: their structs match on 64-bit Linux.
const _: () = assert!(std::mem::size_of::<libc::dirent>() == std::mem::size_of::<libc::dirent64>());

/// One remote directory stream.
struct RemoteDir {
    handle: DirHandle,
    pending: VecDeque<DirEntry>,
    finished: bool,
    /// What the last `readdir` returned a pointer to.
    entry: Box<libc::dirent64>,
    offset: i64,
}

/// `DIR*` address → its remote stream.
static DIRS: Mutex<BTreeMap<usize, RemoteDir>> = Mutex::new(BTreeMap::new());
/// How many remote streams are open, so that `readdir` on local streams never takes the lock.
static OPEN_REMOTE_DIRS: AtomicUsize = AtomicUsize::new(0);

/// Takes the stream lock for the duration of a `fork` (see [`crate::process`]).
pub(crate) fn lock_for_fork() -> Box<dyn Any> {
    Box::new(lock(&DIRS))
}

/// Whether `dir` may be a remote stream (cheap; no lock when there are none).
pub(crate) fn may_be_remote(dir: *mut libc::DIR) -> bool {
    OPEN_REMOTE_DIRS.load(Ordering::Acquire) > 0 && lock(&DIRS).contains_key(&(dir as usize))
}

fn insert(dir: *mut libc::DIR, handle: DirHandle) {
    // SAFETY: `dirent64` is plain integers and bytes; all zeroes is a valid value.
    let entry: Box<libc::dirent64> = Box::new(unsafe { std::mem::zeroed() });
    lock(&DIRS).insert(
        dir as usize,
        RemoteDir {
            handle,
            pending: VecDeque::new(),
            finished: false,
            entry,
            offset: 0,
        },
    );
    OPEN_REMOTE_DIRS.fetch_add(1, Ordering::AcqRel);
}

fn open_remote_dir(path: mirrord_protocol::files::TargetPath) -> Result<DirHandle, i32> {
    match file_request(FileRequest::Opendir { path }) {
        Ok(FileResponse::DirOpened(handle)) => Ok(handle),
        Ok(other) => Err(unexpected_file(&other).errno()),
        Err(error) => Err(error.errno()),
    }
}

fn close_remote_dir(handle: DirHandle) {
    if let Err(error) = file_request(FileRequest::Closedir { handle }) {
        tracing::debug!(%error, "closing a remote directory failed");
    }
}

/// `opendir`. `local` runs the original `opendir` on a path.
pub(crate) fn opendir(
    path: &CStr,
    local: impl FnOnce(&CStr) -> *mut libc::DIR,
) -> Outcome<*mut libc::DIR> {
    match resolve(None, path, Intent::Read) {
        Resolved::Local => Outcome::Bypass("local path"),
        Resolved::LocalMapped(mapped) => stream_or_errno(local(&mapped)),
        Resolved::NotFound => Outcome::Fail(libc::ENOENT),
        Resolved::Remote(path) => {
            if process::in_borrowed_memory() {
                return Outcome::Bypass("vfork child");
            }
            // A directory descriptor of the target's directory under the stream, so that
            // `fstat(dirfd(dir))` is the target directory's (`ls -R` tells directories apart by it).
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
            let fd = match open_remote(path, flags, 0) {
                Outcome::Handled(fd) => fd,
                Outcome::Fail(errno) => return Outcome::Fail(errno),
                Outcome::Bypass(reason) => return Outcome::Bypass(reason),
            };
            let forget = || {
                if let Some(entry) = FDS.take(fd) {
                    forget_entry(fd, entry);
                }
                // SAFETY: `fd` is the placeholder opened just above, not handed out to anyone.
                unsafe { libc::close(fd) };
            };
            let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
                forget();
                return Outcome::Fail(libc::EIO);
            };
            let outcome = fdopendir(fd, id, || {
                // SAFETY: `fd` is an open directory fd; the guard is held, so this is libc's
                // fdopendir.
                unsafe { libc::fdopendir(fd) }
            });
            if !matches!(outcome, Outcome::Handled(_)) {
                forget();
            }
            outcome
        }
    }
}

fn stream_or_errno(dir: *mut libc::DIR) -> Outcome<*mut libc::DIR> {
    if dir.is_null() {
        Outcome::Fail(errno())
    } else {
        Outcome::Handled(dir)
    }
}

/// `fdopendir` on a tracked fd. `local` runs the original `fdopendir(fd)`.
pub(crate) fn fdopendir(
    fd: RawFd,
    id: u32,
    local: impl FnOnce() -> *mut libc::DIR,
) -> Outcome<*mut libc::DIR> {
    if process::in_borrowed_memory() {
        return Outcome::Bypass("vfork child");
    }
    let Some(file) = verified(fd, id) else {
        return Outcome::Bypass("stale fd");
    };
    let handle = match open_remote_dir(file.path.clone()) {
        Ok(handle) => handle,
        Err(errno) => return Outcome::Fail(errno),
    };
    // The original needs a directory fd: swap the placeholder for one, keeping the fd number.
    if let Err(errno) = make_directory_placeholder(fd, &file) {
        close_remote_dir(handle);
        return Outcome::Fail(errno);
    }
    let dir = local();
    if dir.is_null() {
        let errno = errno();
        close_remote_dir(handle);
        return Outcome::Fail(errno);
    }
    insert(dir, handle);
    Outcome::Handled(dir)
}

/// Makes `fd` refer to the private empty directory, unless it already is a directory.
fn make_directory_placeholder(fd: RawFd, file: &RemoteFile) -> Result<(), i32> {
    let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `stat` is a writable `struct stat`.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return Err(errno());
    }
    // SAFETY: fstat succeeded.
    let stat = unsafe { stat.assume_init() };
    if stat.st_mode & libc::S_IFMT == libc::S_IFDIR {
        return Ok(());
    }
    let empty = empty_directory().ok_or(libc::EIO)?;
    // SAFETY: `fd` is an open fd (checked by fstat above); F_GETFD has no argument.
    let fd_flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: `empty` is NUL-terminated.
    let directory = unsafe { libc::open(empty.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) };
    if directory < 0 {
        return Err(errno());
    }
    let flags = if fd_flags >= 0 && fd_flags & libc::FD_CLOEXEC != 0 {
        libc::O_CLOEXEC
    } else {
        0
    };
    // SAFETY: both fds are open; dup3 atomically replaces `fd` (the guard is held, so the layer's own dup3
    // shim passes this straight to libc and the fd table keeps `fd`'s entry).
    let result = unsafe { libc::dup3(directory, fd, flags) };
    let dup_errno = errno();
    // SAFETY: `directory` was opened above and is closed once.
    unsafe { libc::close(directory) };
    if result < 0 {
        return Err(dup_errno);
    }
    let (dev, ino) = placeholder_identity(fd).ok_or(libc::EIO)?;
    file.placeholder_dev.store(dev, Ordering::Release);
    file.placeholder_ino.store(ino, Ordering::Release);
    Ok(())
}

/// `readdir`/`readdir64` on a remote stream: the next entry, or null at the end (errno untouched).
pub(crate) fn readdir(dir: *mut libc::DIR) -> Outcome<*mut libc::dirent64> {
    let key = dir as usize;
    let handle = {
        let mut dirs = lock(&DIRS);
        let Some(stream) = dirs.get_mut(&key) else {
            return Outcome::Bypass("local stream");
        };
        if let Some(entry) = stream.next_entry() {
            return Outcome::Handled(entry);
        }
        if stream.finished {
            return Outcome::Handled(std::ptr::null_mut());
        }
        stream.handle
    };
    let batch = match file_request(FileRequest::Readdir {
        handle,
        max_entries: BATCH,
    }) {
        Ok(FileResponse::DirEntries(entries)) => entries,
        Ok(other) => return Outcome::Fail(unexpected_file(&other).errno()),
        Err(error) => return remote(Err(error)),
    };
    let mut dirs = lock(&DIRS);
    let Some(stream) = dirs.get_mut(&key) else {
        return Outcome::Fail(libc::EBADF);
    };
    if batch.is_empty() {
        stream.finished = true;
    }
    stream.pending.extend(batch);
    Outcome::Handled(stream.next_entry().unwrap_or(std::ptr::null_mut()))
}

impl RemoteDir {
    /// Fills the entry buffer with the next pending entry and points at it.
    fn next_entry(&mut self) -> Option<*mut libc::dirent64> {
        let next = self.pending.pop_front()?;
        self.offset += 1;
        fill_dirent(&mut self.entry, &next, self.offset);
        Some(&mut *self.entry as *mut libc::dirent64)
    }
}

/// Writes `entry` into a `struct dirent64`.
fn fill_dirent(dirent: &mut libc::dirent64, entry: &DirEntry, offset: i64) {
    dirent.d_ino = entry.inode;
    dirent.d_off = offset;
    dirent.d_reclen = std::mem::size_of::<libc::dirent64>() as u16;
    dirent.d_type = entry.file_type.to_dirent_type();
    let len = entry.name.len().min(dirent.d_name.len() - 1);
    for (slot, byte) in dirent.d_name.iter_mut().zip(&entry.name[..len]) {
        *slot = *byte as libc::c_char;
    }
    dirent.d_name[len] = 0;
}

/// `closedir` on a stream that may be remote: closes the remote side and forgets the fd under the stream
/// when it was a tracked fd (`fdopendir`); the caller then runs the original.
pub(crate) fn closedir(dir: *mut libc::DIR) -> Outcome<c_int> {
    let stream = lock(&DIRS).remove(&(dir as usize));
    let Some(stream) = stream else {
        return Outcome::Bypass("local stream");
    };
    OPEN_REMOTE_DIRS.fetch_sub(1, Ordering::AcqRel);
    close_remote_dir(stream.handle);
    // SAFETY: `dir` is a stream this layer opened (it was in the map) and the caller has not closed it yet.
    let fd = unsafe { libc::dirfd(dir) };
    if let Some(entry) = FDS.take(fd) {
        forget_entry(fd, entry);
    }
    Outcome::Bypass("remote stream forgotten")
}

#[cfg(test)]
mod tests {
    use mirrord_protocol::files::FileType;

    use super::*;

    #[test]
    fn dirent_holds_the_name_type_and_inode() {
        // SAFETY: plain integers and bytes.
        let mut dirent: libc::dirent64 = unsafe { std::mem::zeroed() };
        let entry = DirEntry {
            name: b"config.yaml".to_vec(),
            inode: 9,
            file_type: FileType::Regular,
        };
        fill_dirent(&mut dirent, &entry, 3);
        // SAFETY: fill_dirent NUL-terminates the name.
        let name = unsafe { CStr::from_ptr(dirent.d_name.as_ptr()) };
        assert_eq!(name.to_bytes(), b"config.yaml");
        assert_eq!((dirent.d_ino, dirent.d_off), (9, 3));
        assert_eq!(dirent.d_type, libc::DT_REG);
    }

    #[test]
    fn overlong_names_are_cut_and_terminated() {
        // SAFETY: plain integers and bytes.
        let mut dirent: libc::dirent64 = unsafe { std::mem::zeroed() };
        let entry = DirEntry {
            name: vec![b'x'; 400],
            inode: 1,
            file_type: FileType::Unknown,
        };
        fill_dirent(&mut dirent, &entry, 1);
        assert_eq!(dirent.d_name[255], 0);
        assert_eq!(dirent.d_name[254], b'x' as libc::c_char);
    }

    #[test]
    fn unknown_streams_are_bypassed_without_a_lock() {
        let fake = 0x1000 as *mut libc::DIR;
        assert!(!may_be_remote(fake));
        assert_eq!(readdir(fake), Outcome::Bypass("local stream"));
        assert_eq!(closedir(fake), Outcome::Bypass("local stream"));
    }
}
