//! Files: the safe logic behind the file shims. A path is decided by [`crate::fs_policy`]; a remote
//! open gives the process a real placeholder fd (a memfd, or a private empty directory for
//! `O_DIRECTORY`) that the fd table maps to a [`RemoteFile`] in the registry here. Operations on that fd
//! go to the intproxy; `dup`s share the remote file (reference counted) and the last `close` releases it.
//!
//! Every operation on a tracked fd first checks that the fd still is the placeholder it was (same device
//! and inode): an fd closed behind the layer's back (`close_range`, a raw system call) and reused for a
//! local file is then noticed and forgotten instead of being read remotely.

pub(crate) mod dirs;
mod metadata;
pub(crate) mod native;
pub(crate) mod shims;

use std::{
    any::Any,
    borrow::Cow,
    collections::BTreeMap,
    ffi::{CStr, CString, c_int, c_uint},
    mem::MaybeUninit,
    os::{
        fd::{IntoRawFd, RawFd},
        unix::ffi::{OsStrExt, OsStringExt},
    },
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use mirrord_protocol::{
    Bytes, ErrorCode, FileHandle, MAX_IO_CHUNK, RemoteError,
    files::{AccessMode, FileRequest, FileResponse, Metadata, OpenFlags, TargetPath, Whence},
};

use crate::{
    connection::{file_request, unexpected},
    detour::{Outcome, copy_out, errno, lock},
    fd_table::{FDS, FdEntry},
    fs_policy::{self, Intent, Route},
    process, setup,
};

pub(crate) use metadata::{to_stat, to_statx};

/// A file opened on the target, shared by every fd that `dup`s its placeholder.
#[derive(Debug)]
pub(crate) struct RemoteFile {
    /// The agent's handle.
    handle: FileHandle,
    /// The path on the target (for `fdopendir` and `*at` calls relative to a directory).
    path: TargetPath,
    /// Device and inode of the placeholder.
    placeholder_dev: AtomicU64,
    placeholder_ino: AtomicU64,
    /// The process that opened it; only that process closes the handle.
    owner_pid: u32,
    /// Bytes read ahead (files opened read-only), and how many to ask for at least.
    read_ahead: Option<(Mutex<ReadAhead>, usize)>,
}

/// Bytes the agent sent beyond what a `read` asked for.
#[derive(Debug, Default)]
struct ReadAhead {
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

/// Takes the registry lock for the duration of a `fork` (see [`crate::process`]).
pub(crate) fn lock_for_fork() -> Box<dyn Any> {
    Box::new(lock(&REGISTRY))
}

fn register(file: RemoteFile) -> u32 {
    let mut registry = lock(&REGISTRY);
    let id = registry.next_id;
    registry.next_id = registry.next_id.wrapping_add(1).max(1);
    registry.files.insert(id, (Arc::new(file), 1));
    id
}

fn lookup(id: u32) -> Option<Arc<RemoteFile>> {
    lock(&REGISTRY).files.get(&id).map(|(file, _)| file.clone())
}

fn add_reference(id: u32) {
    if let Some((_, references)) = lock(&REGISTRY).files.get_mut(&id) {
        *references += 1;
    }
}

/// Drops one fd's reference; the last one closes the handle on the target.
fn release(id: u32) {
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
fn share(fd: RawFd, entry: FdEntry, source_fd: RawFd) {
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
fn verified(fd: RawFd, id: u32) -> Option<Arc<RemoteFile>> {
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
fn placeholder_identity(fd: RawFd) -> Option<(u64, u64)> {
    let mut stat = MaybeUninit::<libc::stat>::uninit();
    // SAFETY: `stat` is a writable `struct stat`; fstat(2) fills it on success.
    if unsafe { libc::fstat(fd, stat.as_mut_ptr()) } != 0 {
        return None;
    }
    // SAFETY: fstat succeeded, so the struct is initialised.
    let stat = unsafe { stat.assume_init() };
    Some((stat.st_dev, stat.st_ino))
}

/// The outcome of a libc call that returns -1 with errno on failure.
fn from_libc<T: PartialOrd + Default>(value: T) -> Outcome<T> {
    if value < T::default() {
        Outcome::Fail(errno())
    } else {
        Outcome::Handled(value)
    }
}

/// The outcome of a remote call.
fn remote<T>(result: Result<T, RemoteError>) -> Outcome<T> {
    match result {
        Ok(value) => Outcome::Handled(value),
        Err(error) => {
            tracing::debug!(%error, "remote file operation failed");
            Outcome::Fail(error.errno())
        }
    }
}

/// The hot-path shortcut: whether `path` is certainly local without any further look (see
/// [`fs_policy::FsPolicy::is_plainly_local`]). Pure: calls no libc function, needs no guard.
#[inline(always)]
pub(crate) fn is_plainly_local(path: &CStr) -> bool {
    setup::layer()
        .and_then(|layer| layer.fs.as_ref())
        .is_some_and(|policy| policy.is_plainly_local(path.to_bytes()))
}

/// Where a path argument leads.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// The caller's path, locally: call the original as it is.
    Local,
    /// Another path (rewritten by `mapping`), locally.
    LocalMapped(CString),
    /// On the target.
    Remote(TargetPath),
    /// Nowhere: `ENOENT`.
    NotFound,
}

/// Resolves a path argument (relative to `dirfd` when given and not `AT_FDCWD`, else to the cwd).
#[inline(always)]
pub(crate) fn resolve(dirfd: Option<RawFd>, path: &CStr, intent: Intent) -> Resolved {
    let Some(policy) = setup::layer().and_then(|layer| layer.fs.as_ref()) else {
        return Resolved::Local;
    };
    let bytes = path.to_bytes();
    // The hot path: most paths a program opens are its own libraries, caches and temporary files.
    if bytes.is_empty() || policy.is_plainly_local(bytes) {
        return Resolved::Local;
    }
    resolve_slowly(policy, dirfd, bytes, intent)
}

/// [`resolve`] for the paths that need the whole decision.
#[inline(never)]
fn resolve_slowly(
    policy: &fs_policy::FsPolicy,
    dirfd: Option<RawFd>,
    bytes: &[u8],
    intent: Intent,
) -> Resolved {
    let absolute: Cow<'_, [u8]> = if bytes[0] == b'/' {
        Cow::Borrowed(bytes)
    } else {
        match dirfd.filter(|fd| *fd != libc::AT_FDCWD) {
            Some(fd) => {
                // Relative to a directory opened on the target: the target's, whatever the lists say.
                return match FDS.get(fd) {
                    Some(FdEntry::RemoteFile(id)) => match verified(fd, id) {
                        Some(directory) => Resolved::Remote(TargetPath::from_bytes(
                            fs_policy::normalize(&fs_policy::absolute(
                                bytes,
                                directory.path.as_bytes(),
                            ))
                            .into_owned(),
                        )),
                        None => Resolved::Local,
                    },
                    _ => Resolved::Local,
                };
            }
            None => match std::env::current_dir() {
                Ok(cwd) => {
                    Cow::Owned(fs_policy::absolute(bytes, cwd.as_os_str().as_bytes()).into_owned())
                }
                Err(_) => return Resolved::Local,
            },
        }
    };
    let normal = fs_policy::normalize(&absolute);
    let decision = policy.decide(&normal, intent);
    match decision.route {
        // A local path is used as the caller gave it (the kernel resolves `..` through symlinks, which
        // the lexical normal form does not), unless `mapping` rewrote it.
        Route::Local if !decision.mapped => Resolved::Local,
        Route::Local => match CString::new(decision.path.into_owned()) {
            Ok(mapped) => Resolved::LocalMapped(mapped),
            Err(_) => Resolved::Local,
        },
        Route::Remote => Resolved::Remote(TargetPath::from_bytes(decision.path.into_owned())),
        Route::NotFound => Resolved::NotFound,
    }
}

/// Whether `open` flags change the file system.
fn open_intent(flags: c_int) -> Intent {
    let access = flags & libc::O_ACCMODE;
    if access == libc::O_WRONLY
        || access == libc::O_RDWR
        || flags & (libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) != 0
    {
        Intent::Write
    } else {
        Intent::Read
    }
}

/// `open`, `openat` and friends. `local` runs the original with another path (and the caller's flags).
#[inline]
pub(crate) fn open(
    dirfd: Option<RawFd>,
    path: &CStr,
    flags: c_int,
    mode: c_uint,
    local: impl FnOnce(&CStr) -> c_int,
) -> Outcome<c_int> {
    if flags & libc::O_TMPFILE == libc::O_TMPFILE || flags & libc::O_PATH != 0 {
        return Outcome::Bypass("local-only open flags");
    }
    match resolve(dirfd, path, open_intent(flags)) {
        Resolved::Local => Outcome::Bypass("local path"),
        Resolved::LocalMapped(mapped) => from_libc(local(&mapped)),
        Resolved::NotFound => Outcome::Fail(libc::ENOENT),
        Resolved::Remote(target_path) => {
            if process::in_borrowed_memory() {
                return Outcome::Bypass("vfork child");
            }
            open_remote(target_path, flags, mode)
        }
    }
}

fn open_remote(path: TargetPath, flags: c_int, mode: c_uint) -> Outcome<c_int> {
    let open_flags = OpenFlags::from_raw(flags);
    if let Some(layer) = setup::layer()
        && let Some(socket) = &layer.agent_fds
        && !open_flags.directory
    {
        if crate::connection::agent_is_lost() {
            return remote(Err(RemoteError::agent_lost(
                "the agent connection was lost earlier",
            )));
        }
        match native::open(socket, &layer.endpoint.token, &path, open_flags, mode) {
            Ok(Some(fd)) => {
                let fd = fd.into_raw_fd();
                // The number may still be recorded for something closed behind the layer's back.
                if let Some(stale) = FDS.take(fd) {
                    forget_entry(fd, stale);
                }
                return Outcome::Handled(fd);
            }
            // A directory: opened the usual way below.
            Ok(None) => {}
            Err(error) => return remote(Err(error)),
        }
    }
    let handle = match file_request(FileRequest::Open {
        path: path.clone(),
        flags: open_flags,
        mode,
    }) {
        Ok(FileResponse::Opened(handle)) => handle,
        Ok(other) => return remote::<c_int>(Err(unexpected_file(&other))),
        Err(error) => return remote(Err(error)),
    };
    let close_remote = || {
        let _ = file_request(FileRequest::Close { handle });
    };
    let fd = match make_placeholder(open_flags.directory, open_flags.cloexec) {
        Ok(fd) => fd,
        Err(errno) => {
            close_remote();
            return Outcome::Fail(errno);
        }
    };
    let Some((dev, ino)) = placeholder_identity(fd) else {
        // SAFETY: `fd` is the placeholder just created here, owned by nobody else.
        unsafe { libc::close(fd) };
        close_remote();
        return Outcome::Fail(libc::EIO);
    };
    let read_ahead = setup::layer()
        .map(|layer| layer.readonly_file_buffer)
        .filter(|size| *size > 0 && !open_flags.write && !open_flags.directory)
        .map(|size| (Mutex::new(ReadAhead::default()), size));
    let id = register(RemoteFile {
        handle,
        path,
        placeholder_dev: AtomicU64::new(dev),
        placeholder_ino: AtomicU64::new(ino),
        owner_pid: process::pid(),
        read_ahead,
    });
    match FDS.set(fd, FdEntry::RemoteFile(id)) {
        Ok(Some(stale)) => forget_entry(fd, stale),
        Ok(None) => {}
        Err(_) => {
            // SAFETY: as above.
            unsafe { libc::close(fd) };
            release(id);
            return Outcome::Fail(libc::EMFILE);
        }
    }
    Outcome::Handled(fd)
}

fn unexpected_file(response: &FileResponse) -> RemoteError {
    unexpected(&mirrord_protocol::LayerResponse::File(response.clone()))
}

/// A placeholder fd: an anonymous memfd for files, the private empty directory for directories.
fn make_placeholder(directory: bool, cloexec: bool) -> Result<RawFd, i32> {
    let fd = if directory {
        let empty = empty_directory().ok_or(libc::EIO)?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | if cloexec { libc::O_CLOEXEC } else { 0 };
        // SAFETY: `empty` is a NUL-terminated path.
        unsafe { libc::open(empty.as_ptr(), flags) }
    } else {
        let flags = if cloexec { libc::MFD_CLOEXEC } else { 0 };
        // SAFETY: the name is NUL-terminated; memfd_create only creates an fd.
        unsafe { libc::memfd_create(c"mirrord-remote-file".as_ptr(), flags) }
    };
    if fd < 0 { Err(errno()) } else { Ok(fd) }
}

/// A private empty directory that stands in for remote directories (created once per machine and user).
pub(crate) fn empty_directory() -> Option<&'static CStr> {
    static EMPTY: OnceLock<Option<CString>> = OnceLock::new();
    EMPTY
        .get_or_init(|| {
            let base = std::env::temp_dir();
            // SAFETY: getuid has no preconditions.
            let uid = unsafe { libc::getuid() };
            let path = base.join(format!(".mirrord-layer-empty-{uid}"));
            let _ = std::fs::DirBuilder::new().create(&path);
            let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir());
            is_dir
                .then(|| CString::new(path.into_os_string().into_vec()).ok())
                .flatten()
        })
        .as_deref()
}

/// `read` on a tracked fd.
pub(crate) fn read(fd: RawFd, id: u32, buffer: &mut [MaybeUninit<u8>]) -> Outcome<isize> {
    let Some(file) = verified(fd, id) else {
        return Outcome::Bypass("stale fd");
    };
    remote(
        file.read(buffer.len())
            .map(|bytes| copy_out(buffer, &bytes) as isize),
    )
}

/// `readv` on a tracked fd: one remote read scattered over the buffers.
pub(crate) fn readv(fd: RawFd, id: u32, buffers: &mut [&mut [MaybeUninit<u8>]]) -> Outcome<isize> {
    let Some(file) = verified(fd, id) else {
        return Outcome::Bypass("stale fd");
    };
    let total: usize = buffers.iter().map(|buffer| buffer.len()).sum();
    remote(file.read(total).map(|bytes| {
        let mut copied = 0;
        for buffer in buffers.iter_mut() {
            if copied == bytes.len() {
                break;
            }
            copied += copy_out(buffer, &bytes[copied..]);
        }
        copied as isize
    }))
}

/// `pread` on a tracked fd.
pub(crate) fn pread(
    fd: RawFd,
    id: u32,
    buffer: &mut [MaybeUninit<u8>],
    offset: i64,
) -> Outcome<isize> {
    let Some(file) = verified(fd, id) else {
        return Outcome::Bypass("stale fd");
    };
    let Ok(offset) = u64::try_from(offset) else {
        return Outcome::Fail(libc::EINVAL);
    };
    remote(
        file.request_bytes(FileRequest::Pread {
            handle: file.handle,
            offset,
            len: chunk(buffer.len()),
        })
        .map(|bytes| copy_out(buffer, &bytes) as isize),
    )
}

/// Fills `mapping` with the remote file's bytes from `offset` (the rest stays as it is: zeros in a
/// fresh anonymous mapping), for `mmap` of a tracked fd.
pub(crate) fn fill_mapping(
    fd: RawFd,
    id: u32,
    mapping: &mut [MaybeUninit<u8>],
    offset: i64,
) -> Outcome<()> {
    let Some(file) = verified(fd, id) else {
        return Outcome::Bypass("stale fd");
    };
    let Ok(mut position) = u64::try_from(offset) else {
        return Outcome::Fail(libc::EINVAL);
    };
    let mut filled = 0;
    while filled < mapping.len() {
        let bytes = match file.request_bytes(FileRequest::Pread {
            handle: file.handle,
            offset: position,
            len: chunk(mapping.len() - filled),
        }) {
            Ok(bytes) => bytes,
            Err(error) => return remote(Err(error)),
        };
        if bytes.is_empty() {
            break;
        }
        let copied = copy_out(&mut mapping[filled..], &bytes);
        filled += copied;
        position += copied as u64;
    }
    Outcome::Handled(())
}

/// `write` on a tracked fd.
pub(crate) fn write(fd: RawFd, id: u32, data: &[u8]) -> Outcome<isize> {
    let Some(file) = verified(fd, id) else {
        return Outcome::Bypass("stale fd");
    };
    let data = &data[..data.len().min(MAX_IO_CHUNK as usize)];
    remote(file.written(FileRequest::Write {
        handle: file.handle,
        data: Bytes::from(data),
    }))
}

/// `writev` on a tracked fd: the buffers gathered into one remote write.
pub(crate) fn writev(fd: RawFd, id: u32, buffers: &[&[u8]]) -> Outcome<isize> {
    let mut data = Vec::new();
    for buffer in buffers {
        let room = MAX_IO_CHUNK as usize - data.len();
        data.extend_from_slice(&buffer[..buffer.len().min(room)]);
    }
    write(fd, id, &data)
}

/// `pwrite` on a tracked fd.
pub(crate) fn pwrite(fd: RawFd, id: u32, data: &[u8], offset: i64) -> Outcome<isize> {
    let Some(file) = verified(fd, id) else {
        return Outcome::Bypass("stale fd");
    };
    let Ok(offset) = u64::try_from(offset) else {
        return Outcome::Fail(libc::EINVAL);
    };
    let data = &data[..data.len().min(MAX_IO_CHUNK as usize)];
    remote(file.written(FileRequest::Pwrite {
        handle: file.handle,
        offset,
        data: Bytes::from(data),
    }))
}

/// `lseek` on a tracked fd.
pub(crate) fn lseek(fd: RawFd, id: u32, offset: i64, whence: c_int) -> Outcome<i64> {
    let Some(file) = verified(fd, id) else {
        return Outcome::Bypass("stale fd");
    };
    let Some(whence) = Whence::from_raw(whence) else {
        return Outcome::Fail(libc::EINVAL);
    };
    remote(file.seek(offset, whence))
}

/// `fstat` on a tracked fd.
pub(crate) fn fstat(fd: RawFd, id: u32) -> Outcome<Metadata> {
    let Some(file) = verified(fd, id) else {
        return Outcome::Bypass("stale fd");
    };
    remote(metadata_of(file_request(FileRequest::Fstat {
        handle: file.handle,
    })))
}

/// `close` (and `__close_nocancel`) on a tracked fd: forget it, then let the original close the real fd.
pub(crate) fn close(fd: RawFd, entry: FdEntry) -> Outcome<c_int> {
    // Forgetting a plain socket is harmless even in a vfork child (the parent's table loses only
    // what `socket_info` can ask the kernel again), so the common close of a local socket costs no
    // getpid(2).
    let plain_socket = matches!(entry, FdEntry::Socket(info) if !info.managed);
    if !plain_socket && process::in_borrowed_memory() {
        return Outcome::Bypass("vfork child");
    }
    if entry == FdEntry::LayerConnection {
        crate::connection::evacuate(fd);
        return Outcome::Bypass("the layer's socket moved away");
    }
    if FDS.replace_if(fd, entry, None) {
        forget_entry(fd, entry);
    }
    Outcome::Bypass("tracked fd forgotten")
}

/// `dup`, `fcntl(F_DUPFD*)`: `duplicate` runs the original; the new fd shares the old one's entry.
pub(crate) fn dup(fd: RawFd, entry: FdEntry, duplicate: impl FnOnce() -> c_int) -> Outcome<c_int> {
    if process::in_borrowed_memory() {
        return Outcome::Bypass("vfork child");
    }
    let new_fd = duplicate();
    if new_fd < 0 {
        return Outcome::Fail(errno());
    }
    share(new_fd, entry, fd);
    Outcome::Handled(new_fd)
}

/// `dup2`, `dup3`: `duplicate` runs the original. Whatever `new_fd` was is forgotten (the kernel closed
/// it); it then shares `old_fd`'s entry.
pub(crate) fn dup_onto(
    old_fd: RawFd,
    new_fd: RawFd,
    duplicate: impl FnOnce() -> c_int,
) -> Outcome<c_int> {
    if process::in_borrowed_memory() {
        return Outcome::Bypass("vfork child");
    }
    let old_entry = FDS.get(old_fd);
    if old_fd != new_fd && FDS.get(new_fd) == Some(FdEntry::LayerConnection) {
        crate::connection::evacuate(new_fd);
    }
    let result = duplicate();
    if result < 0 {
        return Outcome::Fail(errno());
    }
    if old_fd == new_fd {
        return Outcome::Handled(result);
    }
    if let Some(stale) = FDS.take(new_fd) {
        forget_entry(new_fd, stale);
    }
    if let Some(entry) = old_entry {
        share(new_fd, entry, old_fd);
    }
    Outcome::Handled(result)
}

/// What a `stat`-like call found.
#[derive(Debug)]
pub(crate) enum Stat {
    /// The target's metadata, for the shim to write out.
    Remote(Metadata),
    /// The original ran on a mapped local path, filled the caller's buffer and returned this.
    Local(c_int),
}

/// `stat`/`lstat` and the path forms of `fstatat`/`statx`. `local` runs the original with another path.
pub(crate) fn stat_path(
    dirfd: Option<RawFd>,
    path: &CStr,
    follow_symlinks: bool,
    local: impl FnOnce(&CStr) -> c_int,
) -> Outcome<Stat> {
    match resolve(dirfd, path, Intent::Read) {
        Resolved::Local => Outcome::Bypass("local path"),
        Resolved::LocalMapped(mapped) => match from_libc(local(&mapped)) {
            Outcome::Handled(value) => Outcome::Handled(Stat::Local(value)),
            Outcome::Fail(errno) => Outcome::Fail(errno),
            Outcome::Bypass(reason) => Outcome::Bypass(reason),
        },
        Resolved::NotFound => Outcome::Fail(libc::ENOENT),
        Resolved::Remote(path) => {
            if process::in_borrowed_memory() {
                return Outcome::Bypass("vfork child");
            }
            remote(
                metadata_of(file_request(FileRequest::Stat {
                    path,
                    follow_symlinks,
                }))
                .map(Stat::Remote),
            )
        }
    }
}

/// `access`, `faccessat`.
pub(crate) fn access(
    dirfd: Option<RawFd>,
    path: &CStr,
    mode: c_int,
    local: impl FnOnce(&CStr) -> c_int,
) -> Outcome<c_int> {
    path_operation(dirfd, path, Intent::Read, local, |path| {
        FileRequest::Access {
            path,
            mode: AccessMode::from_raw(mode),
        }
    })
}

/// `mkdir`.
pub(crate) fn mkdir(
    path: &CStr,
    mode: c_uint,
    local: impl FnOnce(&CStr) -> c_int,
) -> Outcome<c_int> {
    path_operation(None, path, Intent::Write, local, |path| {
        FileRequest::Mkdir { path, mode }
    })
}

/// `unlink`.
pub(crate) fn unlink(path: &CStr, local: impl FnOnce(&CStr) -> c_int) -> Outcome<c_int> {
    path_operation(None, path, Intent::Write, local, |path| {
        FileRequest::Unlink { path }
    })
}

/// `rmdir`.
pub(crate) fn rmdir(path: &CStr, local: impl FnOnce(&CStr) -> c_int) -> Outcome<c_int> {
    path_operation(None, path, Intent::Write, local, |path| {
        FileRequest::Rmdir { path }
    })
}

/// An operation on one path answered by `Done`.
fn path_operation(
    dirfd: Option<RawFd>,
    path: &CStr,
    intent: Intent,
    local: impl FnOnce(&CStr) -> c_int,
    request: impl FnOnce(TargetPath) -> FileRequest,
) -> Outcome<c_int> {
    match resolve(dirfd, path, intent) {
        Resolved::Local => Outcome::Bypass("local path"),
        Resolved::LocalMapped(mapped) => from_libc(local(&mapped)),
        Resolved::NotFound => Outcome::Fail(libc::ENOENT),
        Resolved::Remote(path) => {
            if process::in_borrowed_memory() {
                return Outcome::Bypass("vfork child");
            }
            remote(match file_request(request(path)) {
                Ok(FileResponse::Done) => Ok(0),
                Ok(other) => Err(unexpected_file(&other)),
                Err(error) => Err(error),
            })
        }
    }
}

/// `rename`: both paths on the same side, else `EXDEV`.
pub(crate) fn rename(
    from: &CStr,
    to: &CStr,
    local: impl FnOnce(&CStr, &CStr) -> c_int,
) -> Outcome<c_int> {
    let from_resolved = resolve(None, from, Intent::Write);
    let to_resolved = resolve(None, to, Intent::Write);
    let local_path = |resolved: &Resolved, original: &CStr| -> Option<CString> {
        match resolved {
            Resolved::Local => Some(original.to_owned()),
            Resolved::LocalMapped(mapped) => Some(mapped.clone()),
            _ => None,
        }
    };
    match (&from_resolved, &to_resolved) {
        (Resolved::Local, Resolved::Local) => Outcome::Bypass("local paths"),
        (Resolved::NotFound, _) | (_, Resolved::NotFound) => Outcome::Fail(libc::ENOENT),
        (Resolved::Remote(from), Resolved::Remote(to)) => {
            if process::in_borrowed_memory() {
                return Outcome::Bypass("vfork child");
            }
            remote(
                match file_request(FileRequest::Rename {
                    from: from.clone(),
                    to: to.clone(),
                }) {
                    Ok(FileResponse::Done) => Ok(0),
                    Ok(other) => Err(unexpected_file(&other)),
                    Err(error) => Err(error),
                },
            )
        }
        _ => match (
            local_path(&from_resolved, from),
            local_path(&to_resolved, to),
        ) {
            (Some(from), Some(to)) => from_libc(local(&from, &to)),
            _ => Outcome::Fail(libc::EXDEV),
        },
    }
}

/// `readlink`.
pub(crate) fn readlink(
    path: &CStr,
    buffer: &mut [MaybeUninit<u8>],
    local: impl FnOnce(&CStr) -> isize,
) -> Outcome<isize> {
    match resolve(None, path, Intent::Read) {
        Resolved::Local => Outcome::Bypass("local path"),
        Resolved::LocalMapped(mapped) => from_libc(local(&mapped)),
        Resolved::NotFound => Outcome::Fail(libc::ENOENT),
        Resolved::Remote(path) => {
            if process::in_borrowed_memory() {
                return Outcome::Bypass("vfork child");
            }
            remote(match file_request(FileRequest::Readlink { path }) {
                Ok(FileResponse::LinkTarget(target)) => {
                    Ok(copy_out(buffer, target.as_bytes()) as isize)
                }
                Ok(other) => Err(unexpected_file(&other)),
                Err(error) => Err(error),
            })
        }
    }
}

fn metadata_of(response: Result<FileResponse, RemoteError>) -> Result<Metadata, RemoteError> {
    match response? {
        FileResponse::Metadata(metadata) => Ok(metadata),
        other => Err(unexpected_file(&other)),
    }
}

/// A length for one read request.
fn chunk(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX).min(MAX_IO_CHUNK)
}

impl RemoteFile {
    /// Reads up to `len` bytes at the file position, through the read-ahead buffer when there is one.
    fn read(&self, len: usize) -> Result<Vec<u8>, RemoteError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let Some((ahead, size)) = &self.read_ahead else {
            return self.request_bytes(FileRequest::Read {
                handle: self.handle,
                len: chunk(len),
            });
        };
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

    fn request_bytes(&self, request: FileRequest) -> Result<Vec<u8>, RemoteError> {
        match file_request(request)? {
            FileResponse::Read(bytes) => Ok(bytes.into_vec()),
            other => Err(unexpected_file(&other)),
        }
    }

    fn written(&self, request: FileRequest) -> Result<isize, RemoteError> {
        match file_request(request)? {
            FileResponse::Written(count) => Ok(isize::try_from(count).unwrap_or(isize::MAX)),
            other => Err(unexpected_file(&other)),
        }
    }

    /// Moves the file position, accounting for bytes read ahead (the agent's position is past them).
    fn seek(&self, offset: i64, whence: Whence) -> Result<i64, RemoteError> {
        let mut offset = offset;
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

    #[test]
    fn open_intent_follows_the_flags() {
        assert_eq!(open_intent(libc::O_RDONLY), Intent::Read);
        assert_eq!(open_intent(libc::O_RDONLY | libc::O_CLOEXEC), Intent::Read);
        assert_eq!(open_intent(libc::O_WRONLY), Intent::Write);
        assert_eq!(open_intent(libc::O_RDWR), Intent::Write);
        assert_eq!(open_intent(libc::O_RDONLY | libc::O_CREAT), Intent::Write);
        assert_eq!(open_intent(libc::O_RDONLY | libc::O_TRUNC), Intent::Write);
    }

    #[test]
    fn an_inactive_layer_resolves_everything_locally() {
        assert_eq!(
            resolve(None, c"/app/config.yaml", Intent::Read),
            Resolved::Local
        );
    }

    #[test]
    fn placeholders_are_real_fds_with_their_own_identity() {
        let first = make_placeholder(false, true).unwrap();
        let second = make_placeholder(false, true).unwrap();
        let directory = make_placeholder(true, true).unwrap();
        assert_ne!(placeholder_identity(first), placeholder_identity(second));
        assert!(placeholder_identity(directory).is_some());
        for fd in [first, second, directory] {
            // SAFETY: each fd was created above and is closed once.
            unsafe { libc::close(fd) };
        }
    }
}
