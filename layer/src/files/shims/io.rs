//! `read`, `pread64`, `readv`, `write`, `pwrite64`, `writev`, `lseek` and `mmap` on remote files'
//! placeholders (every other fd costs one load of the fd table).

use std::ffi::{c_int, c_void};

use libc::{iovec, off_t, size_t, ssize_t};

use super::{PRIVATE, alias_shims, remote_file};
use crate::{
    detour::{Outcome, errno, in_buffer, out_buffer, run, set_errno},
    files,
    hooks::{Hook, Installer, hooks},
};

type ReadFn = unsafe extern "C" fn(c_int, *mut c_void, size_t) -> ssize_t;
type PreadFn = unsafe extern "C" fn(c_int, *mut c_void, size_t, off_t) -> ssize_t;
type ReadvFn = unsafe extern "C" fn(c_int, *const iovec, c_int) -> ssize_t;
type WriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t;
type PwriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t, off_t) -> ssize_t;
type LseekFn = unsafe extern "C" fn(c_int, off_t, c_int) -> off_t;
type MmapFn = unsafe extern "C" fn(*mut c_void, size_t, c_int, c_int, c_int, off_t) -> *mut c_void;

hooks! {
    // SAFETY: the types above are glibc's prototypes of these functions.
    unsafe {
        static READ: ReadFn = c"read";
        static READ_NOCANCEL: ReadFn = c"__read_nocancel";
        static PREAD64: PreadFn = c"pread64";
        static PREAD64_NOCANCEL: PreadFn = c"__pread64_nocancel";
        static READV: ReadvFn = c"readv";
        static WRITE: WriteFn = c"write";
        static PWRITE64: PwriteFn = c"pwrite64";
        static WRITEV: ReadvFn = c"writev";
        static LSEEK: LseekFn = c"lseek";
        static LSEEK64: LseekFn = c"lseek64";
        static MMAP: MmapFn = c"mmap";
        static MMAP64: MmapFn = c"mmap64";
    }
}

/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(super) unsafe fn install(installer: &mut Installer) {
    // SAFETY: every shim is written for the C signature of the hook it is paired with and calls the
    // original only through that hook; the caller guarantees the single-threaded constructor.
    unsafe {
        installer.hook(&READ, read_shim, &[]);
        installer.hook(&READ_NOCANCEL, read_nocancel_shim, PRIVATE);
        installer.hook(&PREAD64, pread64_shim, &[]);
        installer.hook(&PREAD64_NOCANCEL, pread64_nocancel_shim, PRIVATE);
        installer.hook(&READV, readv_shim, &[]);
        installer.hook(&WRITE, write_shim, &[]);
        installer.hook(&PWRITE64, pwrite64_shim, &[]);
        installer.hook(&WRITEV, writev_shim, &[]);
        installer.hook(&LSEEK, lseek_shim, &[]);
        installer.hook(&LSEEK64, lseek64_shim, &[]);
        installer.hook(&MMAP, mmap_shim, &[]);
        installer.hook(&MMAP64, mmap64_shim, &[]);
    }
}

alias_shims! {
    read_common(fd: c_int, buffer: *mut c_void, count: size_t) -> ssize_t;
    read_shim => READ;
    read_nocancel_shim => READ_NOCANCEL;
}

alias_shims! {
    pread_common(fd: c_int, buffer: *mut c_void, count: size_t, offset: off_t) -> ssize_t;
    pread64_shim => PREAD64;
    pread64_nocancel_shim => PREAD64_NOCANCEL;
}

alias_shims! {
    mmap_common(
        address: *mut c_void,
        len: size_t,
        prot: c_int,
        flags: c_int,
        fd: c_int,
        offset: off_t,
    ) -> *mut c_void;
    mmap_shim => MMAP;
    mmap64_shim => MMAP64;
}

alias_shims! {
    lseek_common(fd: c_int, offset: off_t, whence: c_int) -> off_t;
    lseek_shim => LSEEK;
    lseek64_shim => LSEEK64;
}

/// # Safety
///
/// read(2)'s contract: `buffer` is valid for `count` writable bytes.
#[inline(always)]
unsafe fn read_common(
    hook: &'static Hook<ReadFn>,
    fd: c_int,
    buffer: *mut c_void,
    count: size_t,
) -> ssize_t {
    let original = || {
        // SAFETY: libc's read with the caller's arguments.
        unsafe { (hook.original())(fd, buffer, count) }
    };
    let Some((id, _guard)) = remote_file(fd) else {
        return original();
    };
    // SAFETY: read(2) requires `buffer` to be valid for `count` writable bytes.
    let Some(view) = (unsafe { out_buffer(buffer, count) }) else {
        return original();
    };
    let saved = errno();
    run("read", || files::read(fd, id, view)).finish(saved, original, -1)
}

/// # Safety
///
/// pread(2)'s contract: `buffer` is valid for `count` writable bytes.
#[inline(always)]
unsafe fn pread_common(
    hook: &'static Hook<PreadFn>,
    fd: c_int,
    buffer: *mut c_void,
    count: size_t,
    offset: off_t,
) -> ssize_t {
    let original = || {
        // SAFETY: libc's pread with the caller's arguments.
        unsafe { (hook.original())(fd, buffer, count, offset) }
    };
    let Some((id, _guard)) = remote_file(fd) else {
        return original();
    };
    // SAFETY: pread(2) requires `buffer` to be valid for `count` writable bytes.
    let Some(view) = (unsafe { out_buffer(buffer, count) }) else {
        return original();
    };
    let saved = errno();
    run("pread64", || files::pread(fd, id, view, offset)).finish(saved, original, -1)
}

/// `mmap` of a remote file's placeholder (an empty memfd, which would map nothing and raise
/// `SIGBUS` on the first access): a private anonymous mapping filled with the file's bytes from
/// `offset` (zeros past its end), then given the caller's protection. A shared writable mapping
/// cannot be kept in sync with the target and fails with `ENODEV`; a shared read-only one is a
/// snapshot. (With `feature.fs.native_fds` the process holds the target's own descriptor and this
/// hook is never involved.)
///
/// # Safety
///
/// mmap(2)'s contract for the caller's arguments.
#[inline(always)]
#[allow(
    clippy::too_many_arguments,
    reason = "mmap's own arguments plus the hook"
)]
unsafe fn mmap_common(
    hook: &'static Hook<MmapFn>,
    address: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    offset: off_t,
) -> *mut c_void {
    let original = || {
        // SAFETY: libc's mmap with the caller's arguments.
        unsafe { (hook.original())(address, len, prot, flags, fd, offset) }
    };
    if flags & libc::MAP_ANONYMOUS != 0 || len == 0 {
        return original();
    }
    let Some((id, _guard)) = remote_file(fd) else {
        return original();
    };
    let saved = errno();
    let shared = flags & libc::MAP_SHARED_VALIDATE != libc::MAP_PRIVATE;
    if shared && prot & libc::PROT_WRITE != 0 {
        set_errno(libc::ENODEV);
        return libc::MAP_FAILED;
    }
    let private_flags =
        (flags & !libc::MAP_SHARED_VALIDATE) | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
    // SAFETY: a fresh anonymous mapping; `address` is only a hint unless the caller asked for
    // MAP_FIXED, in which case replacing what is there is what the caller asked for.
    let mapping = unsafe {
        (hook.original())(
            address,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            private_flags,
            -1,
            0,
        )
    };
    if mapping == libc::MAP_FAILED {
        return mapping;
    }
    let unmap = || {
        // SAFETY: `mapping` is the mapping of `len` bytes made just above, not yet handed out.
        unsafe { libc::munmap(mapping, len) };
    };
    // SAFETY: the mapping is `len` writable bytes that nothing else refers to yet.
    let Some(view) = (unsafe { out_buffer(mapping, len) }) else {
        unmap();
        return original();
    };
    match run("mmap", || files::fill_mapping(fd, id, view, offset)) {
        Outcome::Handled(()) => {
            // SAFETY: `mapping` and `len` are the mapping made above; only its protection changes.
            if unsafe { libc::mprotect(mapping, len, prot) } != 0 {
                let failure = errno();
                unmap();
                set_errno(failure);
                return libc::MAP_FAILED;
            }
            set_errno(saved);
            mapping
        }
        Outcome::Bypass(_) => {
            unmap();
            set_errno(saved);
            original()
        }
        Outcome::Fail(failure) => {
            unmap();
            set_errno(failure);
            libc::MAP_FAILED
        }
    }
}

unsafe extern "C" fn readv_shim(fd: c_int, vectors: *const iovec, count: c_int) -> ssize_t {
    let original = || {
        // SAFETY: libc's readv with the caller's arguments.
        unsafe { (READV.original())(fd, vectors, count) }
    };
    let Some((id, _guard)) = remote_file(fd) else {
        return original();
    };
    // SAFETY: readv(2) requires `vectors` to point to `count` iovecs, each base valid for `iov_len`
    // writable bytes, the buffers not overlapping.
    let Some(mut buffers) = (unsafe { iovec_buffers(vectors, count, out_buffer) }) else {
        return original();
    };
    let saved = errno();
    run("readv", || files::readv(fd, id, &mut buffers)).finish(saved, original, -1)
}

/// Views the buffers of an iovec array with `view` ([`out_buffer`] or [`in_iovec`]); `None` when the
/// array or one of its buffers cannot be viewed.
///
/// # Safety
///
/// `vectors` points to `count` iovecs when it is not null and `count` is positive, and each iovec's
/// base and length meet `view`'s contract.
unsafe fn iovec_buffers<B>(
    vectors: *const iovec,
    count: c_int,
    view: unsafe fn(*mut c_void, usize) -> Option<B>,
) -> Option<Vec<B>> {
    // SAFETY: `count` iovecs (this function's contract).
    let vectors = unsafe { iovecs(vectors, count) }?;
    vectors
        .iter()
        // SAFETY: each base and length meet `view`'s contract (this function's).
        .map(|vector| unsafe { view(vector.iov_base, vector.iov_len) })
        .collect()
}

/// [`in_buffer`] for an iovec's base.
///
/// # Safety
///
/// As [`in_buffer`]: `base` is valid for `len` readable bytes when it is not null.
unsafe fn in_iovec<'a>(base: *mut c_void, len: usize) -> Option<&'a [u8]> {
    // SAFETY: this function's contract is in_buffer's.
    unsafe { in_buffer(base, len) }
}

/// Views an iovec array.
///
/// # Safety
///
/// `vectors` points to `count` iovecs when it is not null and `count` is positive.
unsafe fn iovecs<'a>(vectors: *const iovec, count: c_int) -> Option<&'a [iovec]> {
    let count = usize::try_from(count).ok()?;
    if vectors.is_null() {
        return (count == 0).then_some(&[]);
    }
    // SAFETY: `count` valid iovecs (this function's contract).
    Some(unsafe { std::slice::from_raw_parts(vectors, count) })
}

unsafe extern "C" fn write_shim(fd: c_int, data: *const c_void, count: size_t) -> ssize_t {
    let original = || {
        // SAFETY: libc's write with the caller's arguments.
        unsafe { (WRITE.original())(fd, data, count) }
    };
    let Some((id, _guard)) = remote_file(fd) else {
        return original();
    };
    // SAFETY: write(2) requires `data` to be valid for `count` readable bytes.
    let Some(view) = (unsafe { in_buffer(data, count) }) else {
        return original();
    };
    let saved = errno();
    run("write", || files::write(fd, id, view)).finish(saved, original, -1)
}

unsafe extern "C" fn pwrite64_shim(
    fd: c_int,
    data: *const c_void,
    count: size_t,
    offset: off_t,
) -> ssize_t {
    let original = || {
        // SAFETY: libc's pwrite with the caller's arguments.
        unsafe { (PWRITE64.original())(fd, data, count, offset) }
    };
    let Some((id, _guard)) = remote_file(fd) else {
        return original();
    };
    // SAFETY: pwrite(2) requires `data` to be valid for `count` readable bytes.
    let Some(view) = (unsafe { in_buffer(data, count) }) else {
        return original();
    };
    let saved = errno();
    run("pwrite64", || files::pwrite(fd, id, view, offset)).finish(saved, original, -1)
}

unsafe extern "C" fn writev_shim(fd: c_int, vectors: *const iovec, count: c_int) -> ssize_t {
    let original = || {
        // SAFETY: libc's writev with the caller's arguments.
        unsafe { (WRITEV.original())(fd, vectors, count) }
    };
    let Some((id, _guard)) = remote_file(fd) else {
        return original();
    };
    // SAFETY: writev(2) requires `vectors` to point to `count` iovecs, each base valid for `iov_len`
    // readable bytes.
    let Some(buffers) = (unsafe { iovec_buffers(vectors, count, in_iovec) }) else {
        return original();
    };
    let saved = errno();
    run("writev", || files::writev(fd, id, &buffers)).finish(saved, original, -1)
}

/// # Safety
///
/// None beyond lseek(2)'s: no pointers are involved (it is `unsafe` to fit [`alias_shims!`]).
#[inline(always)]
unsafe fn lseek_common(
    hook: &'static Hook<LseekFn>,
    fd: c_int,
    offset: off_t,
    whence: c_int,
) -> off_t {
    let original = || {
        // SAFETY: libc's lseek with the caller's arguments (no pointers involved).
        unsafe { (hook.original())(fd, offset, whence) }
    };
    let Some((id, _guard)) = remote_file(fd) else {
        return original();
    };
    let saved = errno();
    run("lseek", || files::lseek(fd, id, offset, whence)).finish(saved, original, -1)
}
