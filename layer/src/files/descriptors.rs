//! Operations on the fds the layer tracks: `read`, `readv`, `pread`, `mmap`'s fill, `write`, `writev`,
//! `pwrite`, `lseek` and `fstat` on remote files' placeholders, and the bookkeeping of `close`, `dup`,
//! `dup2`/`dup3` and `close_range` for every tracked fd.

use std::{
    ffi::{c_int, c_uint},
    mem::MaybeUninit,
    os::fd::RawFd,
};

use mirrord_protocol::{
    Bytes, MAX_IO_CHUNK,
    files::{FileRequest, Metadata, Whence},
};

use super::{
    forget_entry,
    registry::{chunk, metadata_of, share, verified},
    remote,
};
use crate::{
    connection::file_request,
    detour::{Outcome, copy_out, errno},
    fd_table::{CAPACITY, FDS, FdEntry},
    process,
};

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

/// `close_range` without `CLOSE_RANGE_CLOEXEC`: closes `first..=last` except the layer's own connection
/// (with `close`, the original, called once per stretch between the layer's fds), and forgets what the
/// fd table recorded for the closed fds.
pub(crate) fn close_range(
    first: c_uint,
    last: c_uint,
    close: impl Fn(c_uint, c_uint) -> c_int,
) -> Outcome<c_int> {
    if first > last {
        return Outcome::Bypass("empty range");
    }
    // A vfork child (posix_spawn closing fds before exec) has its own fd table but the parent's memory:
    // closing its copy of the layer's socket is harmless, changing the shared table is not.
    if process::in_borrowed_memory() {
        return Outcome::Bypass("vfork child");
    }
    let table_end = c_uint::try_from(CAPACITY - 1).unwrap_or(c_uint::MAX);
    let mut kept = Vec::new();
    for fd in first..=last.min(table_end) {
        let Ok(raw) = RawFd::try_from(fd) else { break };
        match FDS.get(raw) {
            None => {}
            Some(FdEntry::LayerConnection) => kept.push(fd),
            Some(entry) if FDS.replace_if(raw, entry, None) => forget_entry(raw, entry),
            Some(_) => {}
        }
    }
    let mut start = first;
    let mut result = 0;
    let mut failure = 0;
    for fd in kept {
        if fd > start && close(start, fd - 1) != 0 && result == 0 {
            result = -1;
            failure = errno();
        }
        start = fd + 1;
    }
    if start <= last && close(start, last) != 0 && result == 0 {
        result = -1;
        failure = errno();
    }
    if result == 0 {
        Outcome::Handled(0)
    } else {
        Outcome::Fail(failure)
    }
}
