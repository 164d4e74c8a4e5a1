//! The file calls: each names a path, which is read from the program's memory, made absolute
//! (against its working directory or the directory descriptor, placeholders mapped back to the
//! target's paths) and decided on by the same `fs` policy the layer uses.
//!
//! - local → `CONTINUE`: the kernel runs the call as if nothing had stopped it (a path rewritten by
//!   `mapping` is the exception: the supervisor runs the call on the new path and answers);
//! - not found → `ENOENT`;
//! - the target → the supervisor does the work and answers: an `open` gets a descriptor placed in
//!   the program with `ADDFD`+`SEND` (the target's own for targets on this machine, a placeholder
//!   directory for directories, a memfd holding the file's bytes for cluster targets); `stat`,
//!   `statx`, `access` and `readlink` get their answer written into the program's memory.
//!
//! Before acting on anything read from the program, the supervisor checks that the call is still
//! waiting (`NOTIF_ID_VALID`): the pid it read from could otherwise be another process by now.

use std::{
    io,
    os::{fd::OwnedFd, unix::ffi::OsStrExt},
};

use mirrord_protocol::{
    RemoteError,
    files::{AccessMode, FileRequest, FileResponse, FileType, Metadata, OpenFlags, TargetPath},
};

use crate::{
    fs_policy::{self, Decision, Intent, Route},
    serve::{Outcome, Worker},
    sys::{self, Notification},
};

/// The longest path the kernel accepts, with its NUL.
const PATH_MAX: usize = 4096;
/// Entries asked for per `Readdir`.
const DIR_BATCH: u32 = 512;

/// A path argument, resolved and decided on.
struct Resolved {
    /// Where the call goes, and the path to use there.
    route: Route,
    path: Vec<u8>,
    mapped: bool,
}

impl Worker {
    /// Handles one file call; `None` for a call this module does not know.
    pub(crate) fn file_call(&mut self, call: &Notification) -> Option<Outcome> {
        let [a0, a1, a2, a3, a4, _] = call.args;
        let at_cwd = libc::AT_FDCWD;
        let outcome = match libc::c_long::from(call.nr) {
            libc::SYS_open => self.open(call, at_cwd, a0, a1 as i32, a2 as u32),
            libc::SYS_creat => self.open(
                call,
                at_cwd,
                a0,
                libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
                a1 as u32,
            ),
            libc::SYS_openat => self.open(call, a0 as i32, a1, a2 as i32, a3 as u32),
            libc::SYS_openat2 => self.openat2(call, a0 as i32, a1, a2, a3),
            libc::SYS_stat => self.stat(call, at_cwd, a0, a1, 0),
            libc::SYS_lstat => self.stat(call, at_cwd, a0, a1, libc::AT_SYMLINK_NOFOLLOW),
            libc::SYS_newfstatat => self.stat(call, a0 as i32, a1, a2, a3 as i32),
            libc::SYS_statx => self.statx(call, a0 as i32, a1, a2 as i32, a4),
            libc::SYS_access => self.access(call, at_cwd, a0, a1 as i32, 0),
            libc::SYS_faccessat => self.access(call, a0 as i32, a1, a2 as i32, 0),
            libc::SYS_faccessat2 => self.access(call, a0 as i32, a1, a2 as i32, a3 as i32),
            libc::SYS_readlink => self.readlink(call, at_cwd, a0, a1, a2),
            libc::SYS_readlinkat => self.readlink(call, a0 as i32, a1, a2, a3),
            _ => return None,
        };
        Some(outcome)
    }

    /// Reads the path at `address`, makes it absolute against `dirfd` and decides on it. `Err`
    /// is the outcome to give at once (`CONTINUE` when the kernel should judge the call itself).
    fn resolve(
        &self,
        call: &Notification,
        dirfd: i32,
        address: u64,
        intent: Intent,
    ) -> Result<Resolved, Outcome> {
        let Some(policy) = self.shared.policy.as_ref() else {
            return Err(Outcome::Continue);
        };
        if address == 0 {
            return Err(Outcome::Continue);
        }
        let path = read_path(call.pid, address).map_err(|_| Outcome::Continue)?;
        if path.is_empty() {
            // `AT_EMPTY_PATH` (a call on the descriptor itself), or ENOENT: the kernel knows.
            return Err(Outcome::Continue);
        }
        if path[0] == b'/' && policy.is_plainly_local(&path) {
            return Err(Outcome::Continue);
        }
        let absolute: Vec<u8> = if path[0] == b'/' {
            path
        } else {
            let base = if dirfd == libc::AT_FDCWD {
                std::fs::read_link(format!("/proc/{}/cwd", call.pid))
            } else {
                std::fs::read_link(format!("/proc/{}/fd/{dirfd}", call.pid))
            };
            // A descriptor that is not a directory (or not open): the kernel gives the error.
            let Ok(base) = base else {
                return Err(Outcome::Continue);
            };
            fs_policy::absolute(&path, base.as_os_str().as_bytes()).into_owned()
        };
        let normal = fs_policy::normalize(&absolute).into_owned();
        let normal = self
            .shared
            .placeholders
            .target_path(&normal)
            .unwrap_or(normal);
        let Decision {
            route,
            path,
            mapped,
        } = policy.decide(&normal, intent);
        Ok(Resolved {
            route,
            path: path.into_owned(),
            mapped,
        })
    }

    fn open(
        &mut self,
        call: &Notification,
        dirfd: i32,
        address: u64,
        flags: i32,
        mode: u32,
    ) -> Outcome {
        let intent = open_intent(flags);
        let resolved = match self.resolve(call, dirfd, address, intent) {
            Ok(resolved) => resolved,
            Err(outcome) => return outcome,
        };
        let cloexec = flags & libc::O_CLOEXEC != 0;
        match resolved.route {
            Route::Local if !resolved.mapped => Outcome::Continue,
            Route::Local => {
                // Opening here can wait (a FIFO's other end may be the program's next call).
                self.remote.turn.pass();
                match sys::open(&resolved.path, flags, mode) {
                    Ok(fd) => Outcome::Descriptor { fd, cloexec },
                    Err(error) => Outcome::Fail(errno(&error)),
                }
            }
            Route::NotFound => Outcome::Fail(libc::ENOENT),
            Route::Remote => {
                if !self.shared.listener.id_valid(call.id) {
                    return Outcome::Gone;
                }
                match self.open_remote(&resolved.path, flags, mode) {
                    Ok(fd) => Outcome::Descriptor { fd, cloexec },
                    Err(error) => Outcome::Fail(error.errno()),
                }
            }
        }
    }

    fn openat2(
        &mut self,
        call: &Notification,
        dirfd: i32,
        address: u64,
        how: u64,
        size: u64,
    ) -> Outcome {
        const HOW_SIZE: usize = std::mem::size_of::<libc::open_how>();
        if how == 0 || (size as usize) < HOW_SIZE {
            return Outcome::Continue;
        }
        let mut raw = [0u8; HOW_SIZE];
        match sys::read_memory(call.pid, how, &mut raw) {
            Ok(count) if count == HOW_SIZE => {}
            _ => return Outcome::Continue,
        }
        let flags = u64::from_ne_bytes(raw[..8].try_into().unwrap());
        let mode = u64::from_ne_bytes(raw[8..16].try_into().unwrap());
        self.open(call, dirfd, address, flags as i32, mode as u32)
    }

    /// A remote `open`: the target's descriptor, a placeholder directory, or the file's bytes in
    /// a memfd.
    fn open_remote(&mut self, path: &[u8], flags: i32, mode: u32) -> Result<OwnedFd, RemoteError> {
        let target = TargetPath::from_bytes(path);
        let open_flags = OpenFlags::from_raw(flags);
        if self.remote.has_native_fds() {
            return match self.remote.open_native(&target, open_flags, mode)? {
                Some(fd) => Ok(fd),
                None => self.open_directory(&target),
            };
        }
        if open_flags.directory {
            return self.open_directory(&target);
        }
        if open_intent(flags) == Intent::Write {
            // Writing needs a descriptor that reaches the target's file; only targets on this
            // machine have one. Fail loudly rather than write to a copy nobody reads.
            tracing::warn!(path = %target, "writing to a cluster target's file is not served on the system-call path");
            return Err(RemoteError::new(
                mirrord_protocol::ErrorCode::ReadOnlyFilesystem,
                "writes to cluster targets are not served on the system-call path",
            ));
        }
        let FileResponse::Opened(handle) = self.remote.file(FileRequest::Open {
            path: target.clone(),
            flags: open_flags,
            mode,
        })?
        else {
            return Err(unexpected());
        };
        let result = self.copy_to_memfd(handle, &target);
        let _ = self.remote.file(FileRequest::Close { handle });
        match result {
            Err(error) if error.errno() == libc::EISDIR => self.open_directory(&target),
            other => other,
        }
    }

    fn copy_to_memfd(
        &mut self,
        handle: mirrord_protocol::FileHandle,
        target: &TargetPath,
    ) -> Result<OwnedFd, RemoteError> {
        use std::io::{Seek, Write};
        if let FileResponse::Metadata(metadata) = self.remote.file(FileRequest::Fstat { handle })?
            && metadata.file_type() == FileType::Directory
        {
            return Err(RemoteError::from(&io::Error::from_raw_os_error(
                libc::EISDIR,
            )));
        }
        let fd = sys::memfd("mirrord-remote").map_err(|error| RemoteError::from(&error))?;
        let mut file = std::fs::File::from(fd);
        loop {
            let FileResponse::Read(bytes) = self.remote.file(FileRequest::Read {
                handle,
                len: mirrord_protocol::MAX_IO_CHUNK,
            })?
            else {
                return Err(unexpected());
            };
            if bytes.is_empty() {
                break;
            }
            file.write_all(&bytes)
                .map_err(|error| RemoteError::from(&error))?;
        }
        file.rewind().map_err(|error| RemoteError::from(&error))?;
        tracing::debug!(path = %target, "remote file copied into a memfd");
        Ok(OwnedFd::from(file))
    }

    /// Lists a target directory and opens a placeholder of it.
    fn open_directory(&mut self, target: &TargetPath) -> Result<OwnedFd, RemoteError> {
        let FileResponse::DirOpened(handle) = self.remote.file(FileRequest::Opendir {
            path: target.clone(),
        })?
        else {
            return Err(unexpected());
        };
        let mut entries = Vec::new();
        let listed = loop {
            match self.remote.file(FileRequest::Readdir {
                handle,
                max_entries: DIR_BATCH,
            }) {
                Ok(FileResponse::DirEntries(batch)) if batch.is_empty() => break Ok(()),
                Ok(FileResponse::DirEntries(batch)) => entries.extend(batch),
                Ok(_) => break Err(unexpected()),
                Err(error) => break Err(error),
            }
        };
        let _ = self.remote.file(FileRequest::Closedir { handle });
        listed?;
        let dir = self
            .shared
            .placeholders
            .create(target.as_bytes(), &entries)
            .map_err(|error| RemoteError::from(&error))?;
        sys::open(
            dir.as_os_str().as_bytes(),
            libc::O_RDONLY | libc::O_DIRECTORY,
            0,
        )
        .map_err(|error| RemoteError::from(&error))
    }

    /// `stat`, `lstat`, `newfstatat`: a `struct stat` written at `buffer`.
    fn stat(
        &mut self,
        call: &Notification,
        dirfd: i32,
        address: u64,
        buffer: u64,
        flags: i32,
    ) -> Outcome {
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
        let metadata = match self.metadata(call, dirfd, address, follow) {
            Ok(metadata) => metadata,
            Err(outcome) => return outcome,
        };
        self.write_answer(call, buffer, &stat_bytes(&metadata))
    }

    /// `statx`: a `struct statx` with the basic fields written at `buffer`.
    fn statx(
        &mut self,
        call: &Notification,
        dirfd: i32,
        address: u64,
        flags: i32,
        buffer: u64,
    ) -> Outcome {
        let follow = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
        let metadata = match self.metadata(call, dirfd, address, follow) {
            Ok(metadata) => metadata,
            Err(outcome) => return outcome,
        };
        self.write_answer(call, buffer, &statx_bytes(&metadata))
    }

    /// The metadata of a path that is not served by the kernel; `Err` is the outcome otherwise.
    fn metadata(
        &mut self,
        call: &Notification,
        dirfd: i32,
        address: u64,
        follow: bool,
    ) -> Result<Metadata, Outcome> {
        let resolved = self.resolve(call, dirfd, address, Intent::Read)?;
        match resolved.route {
            Route::Local if !resolved.mapped => Err(Outcome::Continue),
            Route::Local => {
                let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&resolved.path));
                let metadata = if follow {
                    std::fs::metadata(path)
                } else {
                    std::fs::symlink_metadata(path)
                };
                metadata
                    .map(|metadata| Metadata::from(&metadata))
                    .map_err(|error| Outcome::Fail(errno(&error)))
            }
            Route::NotFound => Err(Outcome::Fail(libc::ENOENT)),
            Route::Remote => {
                if !self.shared.listener.id_valid(call.id) {
                    return Err(Outcome::Gone);
                }
                match self.remote.file(FileRequest::Stat {
                    path: TargetPath::from_bytes(resolved.path),
                    follow_symlinks: follow,
                }) {
                    Ok(FileResponse::Metadata(metadata)) => Ok(metadata),
                    Ok(_) => Err(Outcome::Fail(unexpected().errno())),
                    Err(error) => Err(Outcome::Fail(error.errno())),
                }
            }
        }
    }

    fn access(
        &mut self,
        call: &Notification,
        dirfd: i32,
        address: u64,
        mode: i32,
        flags: i32,
    ) -> Outcome {
        let resolved = match self.resolve(call, dirfd, address, Intent::Read) {
            Ok(resolved) => resolved,
            Err(outcome) => return outcome,
        };
        match resolved.route {
            Route::Local if !resolved.mapped => Outcome::Continue,
            Route::Local => match sys::access(&resolved.path, mode, flags) {
                Ok(()) => Outcome::Value(0),
                Err(error) => Outcome::Fail(errno(&error)),
            },
            Route::NotFound => Outcome::Fail(libc::ENOENT),
            Route::Remote => {
                if !self.shared.listener.id_valid(call.id) {
                    return Outcome::Gone;
                }
                match self.remote.file(FileRequest::Access {
                    path: TargetPath::from_bytes(resolved.path),
                    mode: AccessMode::from_raw(mode),
                }) {
                    Ok(_) => Outcome::Value(0),
                    Err(error) => Outcome::Fail(error.errno()),
                }
            }
        }
    }

    fn readlink(
        &mut self,
        call: &Notification,
        dirfd: i32,
        address: u64,
        buffer: u64,
        size: u64,
    ) -> Outcome {
        let resolved = match self.resolve(call, dirfd, address, Intent::Read) {
            Ok(resolved) => resolved,
            Err(outcome) => return outcome,
        };
        let target: Vec<u8> = match resolved.route {
            Route::Local if !resolved.mapped => return Outcome::Continue,
            Route::Local => match std::fs::read_link(std::ffi::OsStr::from_bytes(&resolved.path)) {
                Ok(link) => link.as_os_str().as_bytes().to_vec(),
                Err(error) => return Outcome::Fail(errno(&error)),
            },
            Route::NotFound => return Outcome::Fail(libc::ENOENT),
            Route::Remote => {
                if !self.shared.listener.id_valid(call.id) {
                    return Outcome::Gone;
                }
                match self.remote.file(FileRequest::Readlink {
                    path: TargetPath::from_bytes(resolved.path),
                }) {
                    Ok(FileResponse::LinkTarget(link)) => link.into_bytes(),
                    Ok(_) => return Outcome::Fail(unexpected().errno()),
                    Err(error) => return Outcome::Fail(error.errno()),
                }
            }
        };
        if size == 0 {
            return Outcome::Fail(libc::EINVAL);
        }
        let count = target.len().min(size as usize);
        match self.write_answer(call, buffer, &target[..count]) {
            Outcome::Value(_) => Outcome::Value(count as i64),
            other => other,
        }
    }

    /// Writes `bytes` at `address` in the caller (after checking that the call still waits) and
    /// answers 0.
    fn write_answer(&self, call: &Notification, address: u64, bytes: &[u8]) -> Outcome {
        if !self.shared.listener.id_valid(call.id) {
            return Outcome::Gone;
        }
        match sys::write_memory(call.pid, address, bytes) {
            Ok(()) => Outcome::Value(0),
            Err(_) => Outcome::Fail(libc::EFAULT),
        }
    }
}

/// Whether `open` flags read or change the file system.
fn open_intent(flags: i32) -> Intent {
    if flags & libc::O_ACCMODE != libc::O_RDONLY || flags & (libc::O_CREAT | libc::O_TRUNC) != 0 {
        Intent::Write
    } else {
        Intent::Read
    }
}

/// Reads a NUL-terminated path of at most [`PATH_MAX`] bytes, a page at a time (the string may
/// end just before unmapped memory). `ENAMETOOLONG` without a NUL.
fn read_path(pid: u32, address: u64) -> io::Result<Vec<u8>> {
    const PAGE: u64 = 4096;
    let mut path = Vec::with_capacity(256);
    let mut at = address;
    while path.len() < PATH_MAX {
        let to_page_end = (PAGE - at % PAGE) as usize;
        let want = to_page_end.min(PATH_MAX - path.len());
        let mut chunk = [0u8; PAGE as usize];
        let count = sys::read_memory(pid, at, &mut chunk[..want])?;
        if count == 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        if let Some(end) = chunk[..count].iter().position(|byte| *byte == 0) {
            path.extend_from_slice(&chunk[..end]);
            return Ok(path);
        }
        path.extend_from_slice(&chunk[..count]);
        at += count as u64;
    }
    Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG))
}

fn errno(error: &io::Error) -> i32 {
    error.raw_os_error().unwrap_or(libc::EIO)
}

fn unexpected() -> RemoteError {
    RemoteError::new(
        mirrord_protocol::ErrorCode::Protocol,
        "unexpected answer from the intproxy",
    )
}

/// The bytes of this platform's `struct stat` for `metadata`.
fn stat_bytes(metadata: &Metadata) -> Vec<u8> {
    let mut stat: libc::stat = sys::zeroed_stat();
    stat.st_dev = metadata.dev;
    stat.st_ino = metadata.ino;
    stat.st_mode = metadata.mode;
    stat.st_nlink = metadata.nlink;
    stat.st_uid = metadata.uid;
    stat.st_gid = metadata.gid;
    stat.st_rdev = metadata.rdev;
    stat.st_size = metadata.size as i64;
    stat.st_blksize = metadata.blksize as i64;
    stat.st_blocks = metadata.blocks as i64;
    stat.st_atime = metadata.atime.seconds;
    stat.st_atime_nsec = i64::from(metadata.atime.nanoseconds);
    stat.st_mtime = metadata.mtime.seconds;
    stat.st_mtime_nsec = i64::from(metadata.mtime.nanoseconds);
    stat.st_ctime = metadata.ctime.seconds;
    stat.st_ctime_nsec = i64::from(metadata.ctime.nanoseconds);
    sys::struct_bytes(&stat)
}

/// The bytes of `struct statx` for `metadata`: the basic fields, `stx_mask` saying which.
fn statx_bytes(metadata: &Metadata) -> Vec<u8> {
    let mut statx: libc::statx = sys::zeroed_statx();
    statx.stx_mask = libc::STATX_BASIC_STATS;
    statx.stx_blksize = metadata.blksize as u32;
    statx.stx_nlink = metadata.nlink as u32;
    statx.stx_uid = metadata.uid;
    statx.stx_gid = metadata.gid;
    statx.stx_mode = metadata.mode as u16;
    statx.stx_ino = metadata.ino;
    statx.stx_size = metadata.size;
    statx.stx_blocks = metadata.blocks;
    for (field, timestamp) in [
        (&mut statx.stx_atime, metadata.atime),
        (&mut statx.stx_mtime, metadata.mtime),
        (&mut statx.stx_ctime, metadata.ctime),
    ] {
        field.tv_sec = timestamp.seconds;
        field.tv_nsec = timestamp.nanoseconds;
    }
    statx.stx_rdev_major = libc::major(metadata.rdev);
    statx.stx_rdev_minor = libc::minor(metadata.rdev);
    statx.stx_dev_major = libc::major(metadata.dev);
    statx.stx_dev_minor = libc::minor(metadata.dev);
    sys::struct_bytes(&statx)
}
