//! The file shims: the `extern "C"` functions libc's patched file functions jump to. Each one checks the
//! guard (and, for fd calls, the fd table: an fd the layer does not track costs one atomic load), turns
//! its raw arguments into safe views, runs the logic in [`crate::files`], and returns.
//!
//! Aliases (`open64` of `open`, `lseek64` of `lseek`, …) are found at the same address and served by the
//! first shim; their hooks exist so that the alias is still caught where libc keeps a separate body.
//!
//! Variadic functions (`open`, `openat`, `fcntl`) are declared with their optional argument as a fixed
//! one: on the Linux x86-64 and AArch64 calling conventions variadic integer arguments travel in the same
//! registers as fixed ones, so the shim reads what the caller passed (garbage when the caller passed
//! nothing, and then it is not used) and passes it on unchanged.

use std::{
    ffi::{CStr, c_char, c_int, c_uint, c_void},
    mem::MaybeUninit,
};

use libc::{DIR, dirent64, iovec, mode_t, off_t, size_t, ssize_t, stat, statx};

use super::{Stat, dirs};
use crate::{
    detour::{
        DetourGuard, Leaf, Outcome, c_str, errno, in_buffer, leaf, out_buffer, run, set_errno,
    },
    fd_table::{FDS, FdEntry},
    files,
    hooks::{Hook, Installer},
};

type OpenFn = unsafe extern "C" fn(*const c_char, c_int, c_uint) -> c_int;
type OpenatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, c_uint) -> c_int;
type ReadFn = unsafe extern "C" fn(c_int, *mut c_void, size_t) -> ssize_t;
type PreadFn = unsafe extern "C" fn(c_int, *mut c_void, size_t, off_t) -> ssize_t;
type ReadvFn = unsafe extern "C" fn(c_int, *const iovec, c_int) -> ssize_t;
type WriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t) -> ssize_t;
type PwriteFn = unsafe extern "C" fn(c_int, *const c_void, size_t, off_t) -> ssize_t;
type LseekFn = unsafe extern "C" fn(c_int, off_t, c_int) -> off_t;
type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
type MmapFn = unsafe extern "C" fn(*mut c_void, size_t, c_int, c_int, c_int, off_t) -> *mut c_void;
type Dup2Fn = unsafe extern "C" fn(c_int, c_int) -> c_int;
type Dup3Fn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
type FcntlFn = unsafe extern "C" fn(c_int, c_int, usize) -> c_int;
type StatFn = unsafe extern "C" fn(*const c_char, *mut stat) -> c_int;
type FstatFn = unsafe extern "C" fn(c_int, *mut stat) -> c_int;
type FstatatFn = unsafe extern "C" fn(c_int, *const c_char, *mut stat, c_int) -> c_int;
type StatxFn = unsafe extern "C" fn(c_int, *const c_char, c_int, c_uint, *mut statx) -> c_int;
type XstatFn = unsafe extern "C" fn(c_int, *const c_char, *mut stat) -> c_int;
type FxstatFn = unsafe extern "C" fn(c_int, c_int, *mut stat) -> c_int;
type FxstatatFn = unsafe extern "C" fn(c_int, c_int, *const c_char, *mut stat, c_int) -> c_int;
type AccessFn = unsafe extern "C" fn(*const c_char, c_int) -> c_int;
type FaccessatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, c_int) -> c_int;
type ReadlinkFn = unsafe extern "C" fn(*const c_char, *mut c_char, size_t) -> ssize_t;
type OpendirFn = unsafe extern "C" fn(*const c_char) -> *mut DIR;
type FdopendirFn = unsafe extern "C" fn(c_int) -> *mut DIR;
type ReaddirFn = unsafe extern "C" fn(*mut DIR) -> *mut dirent64;
type ClosedirFn = unsafe extern "C" fn(*mut DIR) -> c_int;
type MkdirFn = unsafe extern "C" fn(*const c_char, mode_t) -> c_int;
type PathFn = unsafe extern "C" fn(*const c_char) -> c_int;
type RenameFn = unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;

static OPEN: Hook<OpenFn> = Hook::new(c"open");
static OPEN64: Hook<OpenFn> = Hook::new(c"open64");
static OPEN_NOCANCEL: Hook<OpenFn> = Hook::new(c"__open_nocancel");
static OPEN64_NOCANCEL: Hook<OpenFn> = Hook::new(c"__open64_nocancel");
static OPENAT: Hook<OpenatFn> = Hook::new(c"openat");
static OPENAT64: Hook<OpenatFn> = Hook::new(c"openat64");
static READ: Hook<ReadFn> = Hook::new(c"read");
static READ_NOCANCEL: Hook<ReadFn> = Hook::new(c"__read_nocancel");
static PREAD64: Hook<PreadFn> = Hook::new(c"pread64");
static PREAD64_NOCANCEL: Hook<PreadFn> = Hook::new(c"__pread64_nocancel");
static READV: Hook<ReadvFn> = Hook::new(c"readv");
static WRITE: Hook<WriteFn> = Hook::new(c"write");
static PWRITE64: Hook<PwriteFn> = Hook::new(c"pwrite64");
static WRITEV: Hook<ReadvFn> = Hook::new(c"writev");
static LSEEK: Hook<LseekFn> = Hook::new(c"lseek");
static LSEEK64: Hook<LseekFn> = Hook::new(c"lseek64");
static CLOSE: Hook<CloseFn> = Hook::new(c"close");
static MMAP: Hook<MmapFn> = Hook::new(c"mmap");
static MMAP64: Hook<MmapFn> = Hook::new(c"mmap64");
static CLOSE_NOCANCEL: Hook<CloseFn> = Hook::new(c"__close_nocancel");
static DUP: Hook<CloseFn> = Hook::new(c"dup");
static DUP2: Hook<Dup2Fn> = Hook::new(c"dup2");
static DUP3: Hook<Dup3Fn> = Hook::new(c"dup3");
static FCNTL: Hook<FcntlFn> = Hook::new(c"fcntl");
static FCNTL64: Hook<FcntlFn> = Hook::new(c"fcntl64");
static STAT: Hook<StatFn> = Hook::new(c"stat");
static STAT64: Hook<StatFn> = Hook::new(c"stat64");
static LSTAT: Hook<StatFn> = Hook::new(c"lstat");
static LSTAT64: Hook<StatFn> = Hook::new(c"lstat64");
static FSTAT: Hook<FstatFn> = Hook::new(c"fstat");
static FSTAT64: Hook<FstatFn> = Hook::new(c"fstat64");
static FSTATAT: Hook<FstatatFn> = Hook::new(c"fstatat");
static FSTATAT64: Hook<FstatatFn> = Hook::new(c"fstatat64");
static NEWFSTATAT: Hook<FstatatFn> = Hook::new(c"newfstatat");
static STATX: Hook<StatxFn> = Hook::new(c"statx");
static XSTAT: Hook<XstatFn> = Hook::new(c"__xstat");
static XSTAT64: Hook<XstatFn> = Hook::new(c"__xstat64");
static LXSTAT: Hook<XstatFn> = Hook::new(c"__lxstat");
static LXSTAT64: Hook<XstatFn> = Hook::new(c"__lxstat64");
static FXSTAT: Hook<FxstatFn> = Hook::new(c"__fxstat");
static FXSTAT64: Hook<FxstatFn> = Hook::new(c"__fxstat64");
static FXSTATAT: Hook<FxstatatFn> = Hook::new(c"__fxstatat");
static FXSTATAT64: Hook<FxstatatFn> = Hook::new(c"__fxstatat64");
static ACCESS: Hook<AccessFn> = Hook::new(c"access");
static FACCESSAT: Hook<FaccessatFn> = Hook::new(c"faccessat");
static READLINK: Hook<ReadlinkFn> = Hook::new(c"readlink");
static OPENDIR: Hook<OpendirFn> = Hook::new(c"opendir");
static FDOPENDIR: Hook<FdopendirFn> = Hook::new(c"fdopendir");
static READDIR: Hook<ReaddirFn> = Hook::new(c"readdir");
static READDIR64: Hook<ReaddirFn> = Hook::new(c"readdir64");
static CLOSEDIR: Hook<ClosedirFn> = Hook::new(c"closedir");
static MKDIR: Hook<MkdirFn> = Hook::new(c"mkdir");
static UNLINK: Hook<PathFn> = Hook::new(c"unlink");
static RMDIR: Hook<PathFn> = Hook::new(c"rmdir");
static RENAME: Hook<RenameFn> = Hook::new(c"rename");

/// glibc's internal functions carry this symbol version.
const PRIVATE: &[&CStr] = &[c"GLIBC_PRIVATE"];
/// The `__xstat` family survives only as compat symbols of the original architecture version.
#[cfg(target_arch = "x86_64")]
const COMPAT: &[&CStr] = &[c"GLIBC_2.2.5"];
#[cfg(target_arch = "aarch64")]
const COMPAT: &[&CStr] = &[c"GLIBC_2.17"];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const COMPAT: &[&CStr] = &[];

/// Hooks that keep the fd table right (`close`, `dup*`, `fcntl`): needed whenever the layer tracks fds,
/// which includes sockets and the layer's own connection, so they are installed in every mode.
///
/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(crate) unsafe fn install_fd_hooks(installer: &mut Installer) {
    // SAFETY: every shim below is written for the C signature of the hook it is paired with, and calls
    // the original only through that hook; the caller guarantees the single-threaded constructor.
    unsafe {
        installer.hook(&CLOSE, close_shim, &[]);
        installer.hook(&CLOSE_NOCANCEL, close_nocancel_shim, PRIVATE);
        installer.hook(&DUP, dup_shim, &[]);
        installer.hook(&DUP2, dup2_shim, &[]);
        installer.hook(&DUP3, dup3_shim, &[]);
        installer.hook(&FCNTL, fcntl_shim, &[]);
        installer.hook(&FCNTL64, fcntl64_shim, &[]);
    }
}

/// Hooks for paths and remote fds, when the file feature is on.
///
/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(crate) unsafe fn install_path_hooks(installer: &mut Installer) {
    // SAFETY: as in `install_fd_hooks`.
    unsafe {
        installer.hook(&OPEN, open_shim, &[]);
        installer.hook(&OPEN64, open64_shim, &[]);
        installer.hook(&OPEN_NOCANCEL, open_nocancel_shim, PRIVATE);
        installer.hook(&OPEN64_NOCANCEL, open64_nocancel_shim, PRIVATE);
        installer.hook(&OPENAT, openat_shim, &[]);
        installer.hook(&OPENAT64, openat64_shim, &[]);
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
        installer.hook(&STAT, stat_shim, &[]);
        installer.hook(&STAT64, stat64_shim, &[]);
        installer.hook(&LSTAT, lstat_shim, &[]);
        installer.hook(&LSTAT64, lstat64_shim, &[]);
        installer.hook(&FSTAT, fstat_shim, &[]);
        installer.hook(&FSTAT64, fstat64_shim, &[]);
        installer.hook(&FSTATAT, fstatat_shim, &[]);
        installer.hook(&FSTATAT64, fstatat64_shim, &[]);
        installer.hook(&NEWFSTATAT, newfstatat_shim, &[]);
        installer.hook(&STATX, statx_shim, &[]);
        installer.hook(&XSTAT, xstat_shim, COMPAT);
        installer.hook(&XSTAT64, xstat64_shim, COMPAT);
        installer.hook(&LXSTAT, lxstat_shim, COMPAT);
        installer.hook(&LXSTAT64, lxstat64_shim, COMPAT);
        installer.hook(&FXSTAT, fxstat_shim, COMPAT);
        installer.hook(&FXSTAT64, fxstat64_shim, COMPAT);
        installer.hook(&FXSTATAT, fxstatat_shim, COMPAT);
        installer.hook(&FXSTATAT64, fxstatat64_shim, COMPAT);
        installer.hook(&ACCESS, access_shim, &[]);
        installer.hook(&FACCESSAT, faccessat_shim, &[]);
        installer.hook(&READLINK, readlink_shim, &[]);
        installer.hook(&OPENDIR, opendir_shim, &[]);
        installer.hook(&FDOPENDIR, fdopendir_shim, &[]);
        installer.hook(&READDIR, readdir_shim, &[]);
        installer.hook(&READDIR64, readdir64_shim, &[]);
        installer.hook(&CLOSEDIR, closedir_shim, &[]);
        installer.hook(&MKDIR, mkdir_shim, &[]);
        installer.hook(&UNLINK, unlink_shim, &[]);
        installer.hook(&RMDIR, rmdir_shim, &[]);
        installer.hook(&RENAME, rename_shim, &[]);
    }
}

// ---------------------------------------------------------------------------------------------------
// open

unsafe extern "C" fn open_shim(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: the caller's arguments under open(2)'s contract.
    match unsafe { open_decide(&OPEN, path, flags, mode) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's open with the caller's arguments.
        Leaf::Original => unsafe { (OPEN.original())(path, flags, mode) },
    }
}

unsafe extern "C" fn open64_shim(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: the caller's arguments under open(2)'s contract.
    match unsafe { open_decide(&OPEN64, path, flags, mode) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's open with the caller's arguments.
        Leaf::Original => unsafe { (OPEN64.original())(path, flags, mode) },
    }
}

unsafe extern "C" fn open_nocancel_shim(path: *const c_char, flags: c_int, mode: c_uint) -> c_int {
    // SAFETY: the caller's arguments under open(2)'s contract.
    match unsafe { open_decide(&OPEN_NOCANCEL, path, flags, mode) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's open with the caller's arguments.
        Leaf::Original => unsafe { (OPEN_NOCANCEL.original())(path, flags, mode) },
    }
}

unsafe extern "C" fn open64_nocancel_shim(
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    // SAFETY: the caller's arguments under open(2)'s contract.
    match unsafe { open_decide(&OPEN64_NOCANCEL, path, flags, mode) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's open with the caller's arguments.
        Leaf::Original => unsafe { (OPEN64_NOCANCEL.original())(path, flags, mode) },
    }
}

/// # Safety
///
/// open(2)'s contract: `path` is null or NUL-terminated.
#[inline(never)]
unsafe fn open_decide(
    hook: &'static Hook<OpenFn>,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> Leaf<c_int> {
    let original = |path: *const c_char| {
        // SAFETY: libc's open with the caller's flags and mode, and a mapped path that is NUL-terminated
        // and outlives the call.
        unsafe { (hook.original())(path, flags, mode) }
    };
    leaf(
        "open",
        || {
            // SAFETY: a NUL-terminated path, as the function requires; null is left to the original.
            unsafe { c_str(path) }.is_some_and(files::is_plainly_local)
        },
        || {
            // SAFETY: open(2) takes a NUL-terminated path; a null one is left to the original (EFAULT).
            let Some(path_view) = (unsafe { c_str(path) }) else {
                return Outcome::Bypass("null path");
            };
            files::open(None, path_view, flags, mode, |mapped| {
                original(mapped.as_ptr())
            })
        },
        -1,
    )
}

unsafe extern "C" fn openat_shim(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    // SAFETY: the caller's arguments under openat(2)'s contract.
    match unsafe { openat_decide(&OPENAT, dirfd, path, flags, mode) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's openat with the caller's arguments.
        Leaf::Original => unsafe { (OPENAT.original())(dirfd, path, flags, mode) },
    }
}

unsafe extern "C" fn openat64_shim(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> c_int {
    // SAFETY: the caller's arguments under openat(2)'s contract.
    match unsafe { openat_decide(&OPENAT64, dirfd, path, flags, mode) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's openat with the caller's arguments.
        Leaf::Original => unsafe { (OPENAT64.original())(dirfd, path, flags, mode) },
    }
}

/// # Safety
///
/// openat(2)'s contract: `path` is null or NUL-terminated.
#[inline(never)]
unsafe fn openat_decide(
    hook: &'static Hook<OpenatFn>,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: c_uint,
) -> Leaf<c_int> {
    let original = |path: *const c_char| {
        // SAFETY: libc's openat with the caller's arguments and a mapped path.
        unsafe { (hook.original())(dirfd, path, flags, mode) }
    };
    leaf(
        "openat",
        || {
            // SAFETY: a NUL-terminated path, as the function requires; null is left to the original.
            unsafe { c_str(path) }.is_some_and(files::is_plainly_local)
        },
        || {
            // SAFETY: openat(2) takes a NUL-terminated path; null is left to the original.
            let Some(path_view) = (unsafe { c_str(path) }) else {
                return Outcome::Bypass("null path");
            };
            files::open(Some(dirfd), path_view, flags, mode, |mapped| {
                original(mapped.as_ptr())
            })
        },
        -1,
    )
}

// ---------------------------------------------------------------------------------------------------
// read, write, seek

unsafe extern "C" fn read_shim(fd: c_int, buffer: *mut c_void, count: size_t) -> ssize_t {
    // SAFETY: the caller's arguments under read(2)'s contract.
    unsafe { read_common(&READ, fd, buffer, count) }
}

unsafe extern "C" fn read_nocancel_shim(fd: c_int, buffer: *mut c_void, count: size_t) -> ssize_t {
    // SAFETY: as in `read_shim`.
    unsafe { read_common(&READ_NOCANCEL, fd, buffer, count) }
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
    let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    // SAFETY: read(2) requires `buffer` to be valid for `count` writable bytes.
    let Some(view) = (unsafe { out_buffer(buffer, count) }) else {
        return original();
    };
    let saved = errno();
    run("read", || files::read(fd, id, view)).finish(saved, original, -1)
}

unsafe extern "C" fn pread64_shim(
    fd: c_int,
    buffer: *mut c_void,
    count: size_t,
    offset: off_t,
) -> ssize_t {
    // SAFETY: the caller's arguments under pread(2)'s contract.
    unsafe { pread_common(&PREAD64, fd, buffer, count, offset) }
}

unsafe extern "C" fn pread64_nocancel_shim(
    fd: c_int,
    buffer: *mut c_void,
    count: size_t,
    offset: off_t,
) -> ssize_t {
    // SAFETY: as in `pread64_shim`.
    unsafe { pread_common(&PREAD64_NOCANCEL, fd, buffer, count, offset) }
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
    let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    // SAFETY: pread(2) requires `buffer` to be valid for `count` writable bytes.
    let Some(view) = (unsafe { out_buffer(buffer, count) }) else {
        return original();
    };
    let saved = errno();
    run("pread64", || files::pread(fd, id, view, offset)).finish(saved, original, -1)
}

unsafe extern "C" fn mmap_shim(
    address: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    offset: off_t,
) -> *mut c_void {
    // SAFETY: the caller's arguments under mmap(2)'s contract.
    unsafe { mmap_common(&MMAP, address, len, prot, flags, fd, offset) }
}

unsafe extern "C" fn mmap64_shim(
    address: *mut c_void,
    len: size_t,
    prot: c_int,
    flags: c_int,
    fd: c_int,
    offset: off_t,
) -> *mut c_void {
    // SAFETY: as in `mmap_shim`.
    unsafe { mmap_common(&MMAP64, address, len, prot, flags, fd, offset) }
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
    let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
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
    let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    // SAFETY: readv(2) requires `vectors` to point to `count` iovecs (checked non-null and non-negative).
    let Some(vectors_view) = (unsafe { iovecs(vectors, count) }) else {
        return original();
    };
    let mut buffers = Vec::with_capacity(vectors_view.len());
    for vector in vectors_view {
        // SAFETY: readv(2) requires each iovec's base to be valid for `iov_len` writable bytes, and the
        // buffers not to overlap.
        match unsafe { out_buffer(vector.iov_base, vector.iov_len) } {
            Some(buffer) => buffers.push(buffer),
            None => return original(),
        }
    }
    let saved = errno();
    run("readv", || files::readv(fd, id, &mut buffers)).finish(saved, original, -1)
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
    let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
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
    let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
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
    let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    // SAFETY: writev(2) requires `vectors` to point to `count` iovecs.
    let Some(vectors_view) = (unsafe { iovecs(vectors, count) }) else {
        return original();
    };
    let mut buffers = Vec::with_capacity(vectors_view.len());
    for vector in vectors_view {
        // SAFETY: writev(2) requires each iovec's base to be valid for `iov_len` readable bytes.
        match unsafe { in_buffer(vector.iov_base, vector.iov_len) } {
            Some(buffer) => buffers.push(buffer),
            None => return original(),
        }
    }
    let saved = errno();
    run("writev", || files::writev(fd, id, &buffers)).finish(saved, original, -1)
}

unsafe extern "C" fn lseek_shim(fd: c_int, offset: off_t, whence: c_int) -> off_t {
    lseek_common(&LSEEK, fd, offset, whence)
}

unsafe extern "C" fn lseek64_shim(fd: c_int, offset: off_t, whence: c_int) -> off_t {
    lseek_common(&LSEEK64, fd, offset, whence)
}

#[inline(always)]
fn lseek_common(hook: &'static Hook<LseekFn>, fd: c_int, offset: off_t, whence: c_int) -> off_t {
    let original = || {
        // SAFETY: libc's lseek with the caller's arguments (no pointers involved).
        unsafe { (hook.original())(fd, offset, whence) }
    };
    let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    let saved = errno();
    run("lseek", || files::lseek(fd, id, offset, whence)).finish(saved, original, -1)
}

// ---------------------------------------------------------------------------------------------------
// close, dup, fcntl

unsafe extern "C" fn close_shim(fd: c_int) -> c_int {
    close_common(&CLOSE, fd)
}

unsafe extern "C" fn close_nocancel_shim(fd: c_int) -> c_int {
    close_common(&CLOSE_NOCANCEL, fd)
}

#[inline(always)]
fn close_common(hook: &'static Hook<CloseFn>, fd: c_int) -> c_int {
    let original = || {
        // SAFETY: libc's close with the caller's fd.
        unsafe { (hook.original())(fd) }
    };
    let Some(entry) = FDS.get(fd) else {
        return original();
    };
    match close_decide(fd, entry) {
        Leaf::Return(result) => result,
        Leaf::Original => original(),
    }
}

#[inline(never)]
fn close_decide(fd: c_int, entry: FdEntry) -> Leaf<c_int> {
    leaf("close", || false, || files::close(fd, entry), -1)
}

unsafe extern "C" fn dup_shim(fd: c_int) -> c_int {
    let original = || {
        // SAFETY: libc's dup with the caller's fd.
        unsafe { (DUP.original())(fd) }
    };
    let Some(entry) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    let saved = errno();
    run("dup", || files::dup(fd, entry, original)).finish(saved, original, -1)
}

unsafe extern "C" fn dup2_shim(old_fd: c_int, new_fd: c_int) -> c_int {
    let original = || {
        // SAFETY: libc's dup2 with the caller's fds.
        unsafe { (DUP2.original())(old_fd, new_fd) }
    };
    if FDS.get(old_fd).is_none() && FDS.get(new_fd).is_none() {
        return original();
    }
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    let saved = errno();
    run("dup2", || files::dup_onto(old_fd, new_fd, original)).finish(saved, original, -1)
}

unsafe extern "C" fn dup3_shim(old_fd: c_int, new_fd: c_int, flags: c_int) -> c_int {
    let original = || {
        // SAFETY: libc's dup3 with the caller's arguments.
        unsafe { (DUP3.original())(old_fd, new_fd, flags) }
    };
    if FDS.get(old_fd).is_none() && FDS.get(new_fd).is_none() {
        return original();
    }
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    let saved = errno();
    run("dup3", || files::dup_onto(old_fd, new_fd, original)).finish(saved, original, -1)
}

unsafe extern "C" fn fcntl_shim(fd: c_int, command: c_int, argument: usize) -> c_int {
    fcntl_common(&FCNTL, fd, command, argument)
}

unsafe extern "C" fn fcntl64_shim(fd: c_int, command: c_int, argument: usize) -> c_int {
    fcntl_common(&FCNTL64, fd, command, argument)
}

#[inline(always)]
fn fcntl_common(hook: &'static Hook<FcntlFn>, fd: c_int, command: c_int, argument: usize) -> c_int {
    let original = || {
        // SAFETY: libc's fcntl with the caller's arguments, the optional one passed on as it came.
        unsafe { (hook.original())(fd, command, argument) }
    };
    if command != libc::F_DUPFD && command != libc::F_DUPFD_CLOEXEC {
        return original();
    }
    let Some(entry) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    let saved = errno();
    run("fcntl", || files::dup(fd, entry, original)).finish(saved, original, -1)
}

// ---------------------------------------------------------------------------------------------------
// stat family

unsafe extern "C" fn stat_shim(path: *const c_char, buffer: *mut stat) -> c_int {
    // SAFETY: the caller's arguments under stat(2)'s contract.
    match unsafe { stat_decide(&STAT, path, buffer, true) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's stat with the caller's arguments (see `stat_original`).
        Leaf::Original => unsafe { stat_original(&STAT, path, buffer, true) },
    }
}

unsafe extern "C" fn stat64_shim(path: *const c_char, buffer: *mut stat) -> c_int {
    // SAFETY: the caller's arguments under stat(2)'s contract.
    match unsafe { stat_decide(&STAT64, path, buffer, true) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's stat with the caller's arguments (see `stat_original`).
        Leaf::Original => unsafe { stat_original(&STAT64, path, buffer, true) },
    }
}

unsafe extern "C" fn lstat_shim(path: *const c_char, buffer: *mut stat) -> c_int {
    // SAFETY: the caller's arguments under stat(2)'s contract.
    match unsafe { stat_decide(&LSTAT, path, buffer, false) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's stat with the caller's arguments (see `stat_original`).
        Leaf::Original => unsafe { stat_original(&LSTAT, path, buffer, false) },
    }
}

unsafe extern "C" fn lstat64_shim(path: *const c_char, buffer: *mut stat) -> c_int {
    // SAFETY: the caller's arguments under stat(2)'s contract.
    match unsafe { stat_decide(&LSTAT64, path, buffer, false) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's stat with the caller's arguments (see `stat_original`).
        Leaf::Original => unsafe { stat_original(&LSTAT64, path, buffer, false) },
    }
}

/// # Safety
///
/// stat(2)'s contract: `path` is null or NUL-terminated; `buffer` is null or a writable `struct stat`.
/// libc's `stat`/`lstat`. glibc's `stat` is `fstatat(AT_FDCWD, …)`: calling that original directly
/// skips a second trip through the layer (libc's `stat` calls the patched `fstatat`).
///
/// # Safety
///
/// stat(2)'s contract: `path` is null or NUL-terminated; `buffer` is null or a writable `struct stat`.
#[inline(always)]
unsafe fn stat_original(
    hook: &'static Hook<StatFn>,
    path: *const c_char,
    buffer: *mut stat,
    follow_symlinks: bool,
) -> c_int {
    let at_flags = if follow_symlinks {
        0
    } else {
        libc::AT_SYMLINK_NOFOLLOW
    };
    match fstatat_original() {
        // SAFETY: libc's fstatat with the caller's path and buffer, which is what libc's stat does.
        Some(fstatat) => unsafe { fstatat(libc::AT_FDCWD, path, buffer, at_flags) },
        // SAFETY: libc's stat with the caller's arguments.
        None => unsafe { (hook.original())(path, buffer) },
    }
}

/// # Safety
///
/// stat(2)'s contract: `path` is null or NUL-terminated; `buffer` is null or a writable `struct stat`.
#[inline(never)]
unsafe fn stat_decide(
    hook: &'static Hook<StatFn>,
    path: *const c_char,
    buffer: *mut stat,
    follow_symlinks: bool,
) -> Leaf<c_int> {
    leaf(
        "stat",
        || {
            // SAFETY: a NUL-terminated path, as the function requires; null is left to the original.
            unsafe { c_str(path) }.is_some_and(files::is_plainly_local)
        },
        || {
            // SAFETY: stat(2) takes a NUL-terminated path; null is left to the original (EFAULT).
            let Some(path_view) = (unsafe { c_str(path) }) else {
                return Outcome::Bypass("null path");
            };
            // SAFETY: stat(2) requires `buffer` to point to a writable `struct stat`; null is left to
            // the original.
            let Some(output) = (unsafe { buffer.cast::<MaybeUninit<stat>>().as_mut() }) else {
                return Outcome::Bypass("null buffer");
            };
            files::stat_path(None, path_view, follow_symlinks, |mapped| {
                // SAFETY: as for the caller's path, with a mapped path that outlives the call.
                unsafe { stat_original(hook, mapped.as_ptr(), buffer, follow_symlinks) }
            })
            .map(|found| write_stat(output, found))
        },
        -1,
    )
}

/// libc's own `fstatat`, when it is hooked.
fn fstatat_original() -> Option<FstatatFn> {
    FSTATAT.installed()
}

/// Writes remote metadata out; a local result was already written by the original.
fn write_stat(output: &mut MaybeUninit<stat>, found: Stat) -> c_int {
    match found {
        Stat::Remote(metadata) => {
            output.write(files::to_stat(&metadata));
            0
        }
        Stat::Local(result) => result,
    }
}

unsafe extern "C" fn fstat_shim(fd: c_int, buffer: *mut stat) -> c_int {
    // SAFETY: the caller's arguments under fstat(2)'s contract.
    unsafe { fstat_common(&FSTAT, fd, buffer) }
}

unsafe extern "C" fn fstat64_shim(fd: c_int, buffer: *mut stat) -> c_int {
    // SAFETY: as in `fstat_shim`.
    unsafe { fstat_common(&FSTAT64, fd, buffer) }
}

/// # Safety
///
/// fstat(2)'s contract: `buffer` is null or a writable `struct stat`.
#[inline(always)]
unsafe fn fstat_common(hook: &'static Hook<FstatFn>, fd: c_int, buffer: *mut stat) -> c_int {
    let fstatat = fstatat_original();
    let original = || match fstatat {
        // SAFETY: libc's fstatat on the fd itself with the caller's buffer, which is what libc's fstat
        // does (calling it directly skips a second trip through the layer).
        Some(fstatat) => unsafe { fstatat(fd, c"".as_ptr(), buffer, libc::AT_EMPTY_PATH) },
        // SAFETY: libc's fstat with the caller's arguments.
        None => unsafe { (hook.original())(fd, buffer) },
    };
    let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    // SAFETY: fstat(2) requires `buffer` to point to a writable `struct stat`; null is left to the original.
    let Some(output) = (unsafe { buffer.cast::<MaybeUninit<stat>>().as_mut() }) else {
        return original();
    };
    let saved = errno();
    run("fstat", || {
        files::fstat(fd, id).map(|metadata| write_stat(output, Stat::Remote(metadata)))
    })
    .finish(saved, original, -1)
}

unsafe extern "C" fn fstatat_shim(
    dirfd: c_int,
    path: *const c_char,
    buffer: *mut stat,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's arguments under fstatat(2)'s contract.
    match unsafe { fstatat_decide(&FSTATAT, dirfd, path, buffer, flags) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's fstatat with the caller's arguments.
        Leaf::Original => unsafe { (FSTATAT.original())(dirfd, path, buffer, flags) },
    }
}

unsafe extern "C" fn fstatat64_shim(
    dirfd: c_int,
    path: *const c_char,
    buffer: *mut stat,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's arguments under fstatat(2)'s contract.
    match unsafe { fstatat_decide(&FSTATAT64, dirfd, path, buffer, flags) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's fstatat with the caller's arguments.
        Leaf::Original => unsafe { (FSTATAT64.original())(dirfd, path, buffer, flags) },
    }
}

unsafe extern "C" fn newfstatat_shim(
    dirfd: c_int,
    path: *const c_char,
    buffer: *mut stat,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's arguments under fstatat(2)'s contract.
    match unsafe { fstatat_decide(&NEWFSTATAT, dirfd, path, buffer, flags) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's fstatat with the caller's arguments.
        Leaf::Original => unsafe { (NEWFSTATAT.original())(dirfd, path, buffer, flags) },
    }
}

/// # Safety
///
/// fstatat(2)'s contract: `path` is null or NUL-terminated; `buffer` is null or a writable `struct stat`.
#[inline(never)]
unsafe fn fstatat_decide(
    hook: &'static Hook<FstatatFn>,
    dirfd: c_int,
    path: *const c_char,
    buffer: *mut stat,
    flags: c_int,
) -> Leaf<c_int> {
    let original = |path: *const c_char| {
        // SAFETY: libc's fstatat with the caller's arguments and a mapped path.
        unsafe { (hook.original())(dirfd, path, buffer, flags) }
    };
    leaf(
        "fstatat",
        || {
            // SAFETY: a NUL-terminated path, as the function requires; null is left to the original.
            unsafe { c_str(path) }.is_some_and(files::is_plainly_local)
        },
        || {
            // SAFETY: fstatat(2) takes a NUL-terminated path; null is left to the original.
            let Some(path_view) = (unsafe { c_str(path) }) else {
                return Outcome::Bypass("null path");
            };
            // SAFETY: fstatat(2) requires `buffer` to point to a writable `struct stat`.
            let Some(output) = (unsafe { buffer.cast::<MaybeUninit<stat>>().as_mut() }) else {
                return Outcome::Bypass("null buffer");
            };
            stat_at(dirfd, path_view, flags, |mapped| original(mapped.as_ptr()))
                .map(|found| write_stat(output, found))
        },
        -1,
    )
}

/// The logic shared by `fstatat` and `statx`: an empty path with `AT_EMPTY_PATH` is the fd itself.
fn stat_at(
    dirfd: c_int,
    path: &CStr,
    flags: c_int,
    local: impl FnOnce(&CStr) -> c_int,
) -> Outcome<Stat> {
    if path.is_empty() && flags & libc::AT_EMPTY_PATH != 0 {
        return match FDS.get(dirfd) {
            Some(FdEntry::RemoteFile(id)) => files::fstat(dirfd, id).map(Stat::Remote),
            _ => Outcome::Bypass("local fd"),
        };
    }
    let follow_symlinks = flags & libc::AT_SYMLINK_NOFOLLOW == 0;
    files::stat_path(Some(dirfd), path, follow_symlinks, local)
}

unsafe extern "C" fn statx_shim(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buffer: *mut statx,
) -> c_int {
    // SAFETY: the caller's arguments under statx(2)'s contract.
    match unsafe { statx_decide(dirfd, path, flags, mask, buffer) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's statx with the caller's arguments.
        Leaf::Original => unsafe { (STATX.original())(dirfd, path, flags, mask, buffer) },
    }
}

/// # Safety
///
/// statx(2)'s contract: `path` is null or NUL-terminated; `buffer` is null or a writable `struct statx`.
#[inline(never)]
unsafe fn statx_decide(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buffer: *mut statx,
) -> Leaf<c_int> {
    let original = |path: *const c_char| {
        // SAFETY: libc's statx with the caller's arguments and a mapped path.
        unsafe { (STATX.original())(dirfd, path, flags, mask, buffer) }
    };
    leaf(
        "statx",
        || {
            // SAFETY: a NUL-terminated path, as the function requires; null is left to the original.
            unsafe { c_str(path) }.is_some_and(files::is_plainly_local)
        },
        || {
            // SAFETY: statx(2) takes a NUL-terminated path; null is left to the original.
            let Some(path_view) = (unsafe { c_str(path) }) else {
                return Outcome::Bypass("null path");
            };
            // SAFETY: statx(2) requires `buffer` to point to a writable `struct statx`.
            let Some(output) = (unsafe { buffer.cast::<MaybeUninit<statx>>().as_mut() }) else {
                return Outcome::Bypass("null buffer");
            };
            stat_at(dirfd, path_view, flags, |mapped| original(mapped.as_ptr())).map(|found| {
                match found {
                    Stat::Remote(metadata) => {
                        output.write(files::to_statx(&metadata));
                        0
                    }
                    Stat::Local(result) => result,
                }
            })
        },
        -1,
    )
}

unsafe extern "C" fn xstat_shim(version: c_int, path: *const c_char, buffer: *mut stat) -> c_int {
    // SAFETY: the caller's arguments under stat(2)'s contract.
    unsafe { xstat_common(&XSTAT, version, path, buffer, true) }
}

unsafe extern "C" fn xstat64_shim(version: c_int, path: *const c_char, buffer: *mut stat) -> c_int {
    // SAFETY: as in `xstat_shim`.
    unsafe { xstat_common(&XSTAT64, version, path, buffer, true) }
}

unsafe extern "C" fn lxstat_shim(version: c_int, path: *const c_char, buffer: *mut stat) -> c_int {
    // SAFETY: as in `xstat_shim`.
    unsafe { xstat_common(&LXSTAT, version, path, buffer, false) }
}

unsafe extern "C" fn lxstat64_shim(
    version: c_int,
    path: *const c_char,
    buffer: *mut stat,
) -> c_int {
    // SAFETY: as in `xstat_shim`.
    unsafe { xstat_common(&LXSTAT64, version, path, buffer, false) }
}

/// # Safety
///
/// stat(2)'s contract, as in [`stat_common`].
unsafe fn xstat_common(
    hook: &'static Hook<XstatFn>,
    version: c_int,
    path: *const c_char,
    buffer: *mut stat,
    follow_symlinks: bool,
) -> c_int {
    let original = |path: *const c_char| {
        // SAFETY: libc's __xstat with the caller's arguments and the caller's or a mapped path.
        unsafe { (hook.original())(version, path, buffer) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original(path);
    };
    // SAFETY: a NUL-terminated path, as stat(2) requires; null is left to the original.
    let Some(path_view) = (unsafe { c_str(path) }) else {
        return original(path);
    };
    // SAFETY: a writable `struct stat` (the only layout of `_STAT_VER` on 64-bit Linux).
    let Some(output) = (unsafe { buffer.cast::<MaybeUninit<stat>>().as_mut() }) else {
        return original(path);
    };
    let saved = errno();
    run("__xstat", || {
        files::stat_path(None, path_view, follow_symlinks, |mapped| {
            original(mapped.as_ptr())
        })
        .map(|found| write_stat(output, found))
    })
    .finish(saved, || original(path), -1)
}

unsafe extern "C" fn fxstat_shim(version: c_int, fd: c_int, buffer: *mut stat) -> c_int {
    // SAFETY: the caller's arguments under fstat(2)'s contract.
    unsafe { fxstat_common(&FXSTAT, version, fd, buffer) }
}

unsafe extern "C" fn fxstat64_shim(version: c_int, fd: c_int, buffer: *mut stat) -> c_int {
    // SAFETY: as in `fxstat_shim`.
    unsafe { fxstat_common(&FXSTAT64, version, fd, buffer) }
}

/// # Safety
///
/// fstat(2)'s contract, as in [`fstat_common`].
#[inline(always)]
unsafe fn fxstat_common(
    hook: &'static Hook<FxstatFn>,
    version: c_int,
    fd: c_int,
    buffer: *mut stat,
) -> c_int {
    let original = || {
        // SAFETY: libc's __fxstat with the caller's arguments.
        unsafe { (hook.original())(version, fd, buffer) }
    };
    let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    // SAFETY: a writable `struct stat`, as fstat(2) requires; null is left to the original.
    let Some(output) = (unsafe { buffer.cast::<MaybeUninit<stat>>().as_mut() }) else {
        return original();
    };
    let saved = errno();
    run("__fxstat", || {
        files::fstat(fd, id).map(|metadata| write_stat(output, Stat::Remote(metadata)))
    })
    .finish(saved, original, -1)
}

unsafe extern "C" fn fxstatat_shim(
    version: c_int,
    dirfd: c_int,
    path: *const c_char,
    buffer: *mut stat,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's arguments under fstatat(2)'s contract.
    unsafe { fxstatat_common(&FXSTATAT, version, dirfd, path, buffer, flags) }
}

unsafe extern "C" fn fxstatat64_shim(
    version: c_int,
    dirfd: c_int,
    path: *const c_char,
    buffer: *mut stat,
    flags: c_int,
) -> c_int {
    // SAFETY: as in `fxstatat_shim`.
    unsafe { fxstatat_common(&FXSTATAT64, version, dirfd, path, buffer, flags) }
}

/// # Safety
///
/// fstatat(2)'s contract, as in [`fstatat_common`].
unsafe fn fxstatat_common(
    hook: &'static Hook<FxstatatFn>,
    version: c_int,
    dirfd: c_int,
    path: *const c_char,
    buffer: *mut stat,
    flags: c_int,
) -> c_int {
    let original = |path: *const c_char| {
        // SAFETY: libc's __fxstatat with the caller's arguments and the caller's or a mapped path.
        unsafe { (hook.original())(version, dirfd, path, buffer, flags) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original(path);
    };
    // SAFETY: a NUL-terminated path, as fstatat(2) requires; null is left to the original.
    let Some(path_view) = (unsafe { c_str(path) }) else {
        return original(path);
    };
    // SAFETY: a writable `struct stat`, as fstatat(2) requires.
    let Some(output) = (unsafe { buffer.cast::<MaybeUninit<stat>>().as_mut() }) else {
        return original(path);
    };
    let saved = errno();
    run("__fxstatat", || {
        stat_at(dirfd, path_view, flags, |mapped| original(mapped.as_ptr()))
            .map(|found| write_stat(output, found))
    })
    .finish(saved, || original(path), -1)
}

// ---------------------------------------------------------------------------------------------------
// access, readlink, mkdir, unlink, rmdir, rename

unsafe extern "C" fn access_shim(path: *const c_char, mode: c_int) -> c_int {
    // SAFETY: the caller's arguments under access(2)'s contract.
    match unsafe { access_decide(libc::AT_FDCWD, path, mode, None) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's access with the caller's arguments.
        Leaf::Original => unsafe { (ACCESS.original())(path, mode) },
    }
}

/// `access` (`flags` is `None`) and `faccessat`.
///
/// # Safety
///
/// access(2)'s contract: `path` is null or NUL-terminated.
#[inline(never)]
unsafe fn access_decide(
    dirfd: c_int,
    path: *const c_char,
    mode: c_int,
    flags: Option<c_int>,
) -> Leaf<c_int> {
    let original = |path: *const c_char| match flags {
        // SAFETY: libc's faccessat with the caller's arguments and a mapped path.
        Some(flags) => unsafe { (FACCESSAT.original())(dirfd, path, mode, flags) },
        // SAFETY: libc's access with the caller's mode and a mapped path.
        None => unsafe { (ACCESS.original())(path, mode) },
    };
    leaf(
        "access",
        || {
            // SAFETY: a NUL-terminated path, as the function requires; null is left to the original.
            unsafe { c_str(path) }.is_some_and(files::is_plainly_local)
        },
        || {
            // SAFETY: access(2) takes a NUL-terminated path; null is left to the original.
            let Some(path_view) = (unsafe { c_str(path) }) else {
                return Outcome::Bypass("null path");
            };
            let dirfd = flags.map(|_| dirfd);
            files::access(dirfd, path_view, mode, |mapped| original(mapped.as_ptr()))
        },
        -1,
    )
}

unsafe extern "C" fn faccessat_shim(
    dirfd: c_int,
    path: *const c_char,
    mode: c_int,
    flags: c_int,
) -> c_int {
    // SAFETY: the caller's arguments under faccessat(2)'s contract.
    match unsafe { access_decide(dirfd, path, mode, Some(flags)) } {
        Leaf::Return(result) => result,
        // SAFETY: libc's faccessat with the caller's arguments.
        Leaf::Original => unsafe { (FACCESSAT.original())(dirfd, path, mode, flags) },
    }
}

unsafe extern "C" fn readlink_shim(
    path: *const c_char,
    buffer: *mut c_char,
    size: size_t,
) -> ssize_t {
    let original = |path: *const c_char| {
        // SAFETY: libc's readlink with the caller's buffer and the caller's or a mapped path.
        unsafe { (READLINK.original())(path, buffer, size) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original(path);
    };
    // SAFETY: readlink(2) takes a NUL-terminated path; null is left to the original.
    let Some(path_view) = (unsafe { c_str(path) }) else {
        return original(path);
    };
    // SAFETY: readlink(2) requires `buffer` to be valid for `size` writable bytes.
    let Some(view) = (unsafe { out_buffer(buffer.cast(), size) }) else {
        return original(path);
    };
    let saved = errno();
    run("readlink", || {
        files::readlink(path_view, view, |mapped| original(mapped.as_ptr()))
    })
    .finish(saved, || original(path), -1)
}

unsafe extern "C" fn mkdir_shim(path: *const c_char, mode: mode_t) -> c_int {
    let original = |path: *const c_char| {
        // SAFETY: libc's mkdir with the caller's mode and the caller's or a mapped path.
        unsafe { (MKDIR.original())(path, mode) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original(path);
    };
    // SAFETY: mkdir(2) takes a NUL-terminated path; null is left to the original.
    let Some(path_view) = (unsafe { c_str(path) }) else {
        return original(path);
    };
    let saved = errno();
    run("mkdir", || {
        files::mkdir(path_view, mode, |mapped| original(mapped.as_ptr()))
    })
    .finish(saved, || original(path), -1)
}

unsafe extern "C" fn unlink_shim(path: *const c_char) -> c_int {
    // SAFETY: the caller's argument under unlink(2)'s contract.
    unsafe { path_common(&UNLINK, path, |path, local| files::unlink(path, local)) }
}

unsafe extern "C" fn rmdir_shim(path: *const c_char) -> c_int {
    // SAFETY: the caller's argument under rmdir(2)'s contract.
    unsafe { path_common(&RMDIR, path, |path, local| files::rmdir(path, local)) }
}

/// # Safety
///
/// `path` is null or NUL-terminated.
unsafe fn path_common(
    hook: &'static Hook<PathFn>,
    path: *const c_char,
    logic: impl FnOnce(&CStr, &dyn Fn(&CStr) -> c_int) -> Outcome<c_int>,
) -> c_int {
    let original = |path: *const c_char| {
        // SAFETY: libc's function with the caller's or a mapped path.
        unsafe { (hook.original())(path) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original(path);
    };
    // SAFETY: a NUL-terminated path; null is left to the original.
    let Some(path_view) = (unsafe { c_str(path) }) else {
        return original(path);
    };
    let saved = errno();
    let local = |mapped: &CStr| original(mapped.as_ptr());
    run("path operation", || logic(path_view, &local)).finish(saved, || original(path), -1)
}

unsafe extern "C" fn rename_shim(from: *const c_char, to: *const c_char) -> c_int {
    let original = |from: *const c_char, to: *const c_char| {
        // SAFETY: libc's rename with the caller's or mapped paths.
        unsafe { (RENAME.original())(from, to) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original(from, to);
    };
    // SAFETY: rename(2) takes NUL-terminated paths; null is left to the original.
    let Some(from_view) = (unsafe { c_str(from) }) else {
        return original(from, to);
    };
    // SAFETY: as above.
    let Some(to_view) = (unsafe { c_str(to) }) else {
        return original(from, to);
    };
    let saved = errno();
    run("rename", || {
        files::rename(from_view, to_view, |from, to| {
            original(from.as_ptr(), to.as_ptr())
        })
    })
    .finish(saved, || original(from, to), -1)
}

// ---------------------------------------------------------------------------------------------------
// directories

unsafe extern "C" fn opendir_shim(path: *const c_char) -> *mut DIR {
    let original = |path: *const c_char| {
        // SAFETY: libc's opendir with the caller's path, a mapped one, or the layer's empty directory.
        unsafe { (OPENDIR.original())(path) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original(path);
    };
    // SAFETY: opendir(3) takes a NUL-terminated path; null is left to the original.
    let Some(path_view) = (unsafe { c_str(path) }) else {
        return original(path);
    };
    let saved = errno();
    run("opendir", || {
        dirs::opendir(path_view, |local| original(local.as_ptr()))
    })
    .finish(saved, || original(path), std::ptr::null_mut())
}

unsafe extern "C" fn fdopendir_shim(fd: c_int) -> *mut DIR {
    let original = || {
        // SAFETY: libc's fdopendir with the caller's fd.
        unsafe { (FDOPENDIR.original())(fd) }
    };
    let Some(FdEntry::RemoteFile(id)) = FDS.get(fd) else {
        return original();
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    let saved = errno();
    run("fdopendir", || dirs::fdopendir(fd, id, original)).finish(
        saved,
        original,
        std::ptr::null_mut(),
    )
}

unsafe extern "C" fn readdir_shim(dir: *mut DIR) -> *mut dirent64 {
    readdir_common(&READDIR, dir)
}

unsafe extern "C" fn readdir64_shim(dir: *mut DIR) -> *mut dirent64 {
    readdir_common(&READDIR64, dir)
}

#[inline(always)]
fn readdir_common(hook: &'static Hook<ReaddirFn>, dir: *mut DIR) -> *mut dirent64 {
    let original = || {
        // SAFETY: libc's readdir with the caller's stream.
        unsafe { (hook.original())(dir) }
    };
    if !dirs::may_be_remote(dir) {
        return original();
    }
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    let saved = errno();
    run("readdir", || dirs::readdir(dir)).finish(saved, original, std::ptr::null_mut())
}

unsafe extern "C" fn closedir_shim(dir: *mut DIR) -> c_int {
    let original = || {
        // SAFETY: libc's closedir with the caller's stream.
        unsafe { (CLOSEDIR.original())(dir) }
    };
    if !dirs::may_be_remote(dir) {
        return original();
    }
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    let saved = errno();
    run("closedir", || dirs::closedir(dir)).finish(saved, original, -1)
}
