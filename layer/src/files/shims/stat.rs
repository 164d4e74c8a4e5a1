//! The stat family: `stat`, `lstat`, `fstat`, `fstatat`, `newfstatat`, `statx`, their `64` aliases and
//! glibc's old `__xstat` compat symbols.
//!
//! The caller's buffer is written in one of two ways: by the original function (a local path, or one
//! `mapping` rewrote) or by the layer (the target's metadata). The layer takes a reference to the buffer
//! only for its own write, after the logic returned, so no Rust reference to it is alive while the
//! original writes through the raw pointer.

use std::{
    ffi::{CStr, c_char, c_int, c_uint},
    mem::MaybeUninit,
};

use libc::{stat, statx};
use mirrord_protocol::files::Metadata;

use super::{COMPAT, alias_shims, remote_file};
use crate::{
    detour::{DetourGuard, Leaf, Outcome, c_str, errno, leaf, run},
    fd_table::{FDS, FdEntry},
    files::{self, Stat},
    hooks::{Hook, Installer, hooks},
};

type StatFn = unsafe extern "C" fn(*const c_char, *mut stat) -> c_int;
type FstatFn = unsafe extern "C" fn(c_int, *mut stat) -> c_int;
type FstatatFn = unsafe extern "C" fn(c_int, *const c_char, *mut stat, c_int) -> c_int;
type StatxFn = unsafe extern "C" fn(c_int, *const c_char, c_int, c_uint, *mut statx) -> c_int;
type XstatFn = unsafe extern "C" fn(c_int, *const c_char, *mut stat) -> c_int;
type FxstatFn = unsafe extern "C" fn(c_int, c_int, *mut stat) -> c_int;
type FxstatatFn = unsafe extern "C" fn(c_int, c_int, *const c_char, *mut stat, c_int) -> c_int;

hooks! {
    // SAFETY: the types above are glibc's prototypes of these functions (`struct stat` is the one
    // layout of `_STAT_VER` on 64-bit Linux).
    unsafe {
        static STAT: StatFn = c"stat";
        static STAT64: StatFn = c"stat64";
        static LSTAT: StatFn = c"lstat";
        static LSTAT64: StatFn = c"lstat64";
        static FSTAT: FstatFn = c"fstat";
        static FSTAT64: FstatFn = c"fstat64";
        static FSTATAT: FstatatFn = c"fstatat";
        static FSTATAT64: FstatatFn = c"fstatat64";
        static NEWFSTATAT: FstatatFn = c"newfstatat";
        static STATX: StatxFn = c"statx";
        static XSTAT: XstatFn = c"__xstat";
        static XSTAT64: XstatFn = c"__xstat64";
        static LXSTAT: XstatFn = c"__lxstat";
        static LXSTAT64: XstatFn = c"__lxstat64";
        static FXSTAT: FxstatFn = c"__fxstat";
        static FXSTAT64: FxstatFn = c"__fxstat64";
        static FXSTATAT: FxstatatFn = c"__fxstatat";
        static FXSTATAT64: FxstatatFn = c"__fxstatat64";
    }
}

/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(super) unsafe fn install(installer: &mut Installer) {
    // SAFETY: every shim is written for the C signature of the hook it is paired with and calls the
    // original only through that hook; the caller guarantees the single-threaded constructor.
    unsafe {
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
    }
}

alias_shims! {
    leaf stat_decide(path: *const c_char, buffer: *mut stat) -> c_int, original = stat_original;
    stat_shim => STAT, true;
    stat64_shim => STAT64, true;
    lstat_shim => LSTAT, false;
    lstat64_shim => LSTAT64, false;
}

alias_shims! {
    fstat_common(fd: c_int, buffer: *mut stat) -> c_int;
    fstat_shim => FSTAT;
    fstat64_shim => FSTAT64;
}

alias_shims! {
    leaf fstatat_decide(dirfd: c_int, path: *const c_char, buffer: *mut stat, flags: c_int) -> c_int;
    fstatat_shim => FSTATAT;
    fstatat64_shim => FSTATAT64;
    newfstatat_shim => NEWFSTATAT;
}

alias_shims! {
    leaf statx_decide(
        dirfd: c_int,
        path: *const c_char,
        flags: c_int,
        mask: c_uint,
        buffer: *mut statx,
    ) -> c_int;
    statx_shim => STATX;
}

alias_shims! {
    xstat_common(version: c_int, path: *const c_char, buffer: *mut stat) -> c_int;
    xstat_shim => XSTAT, true;
    xstat64_shim => XSTAT64, true;
    lxstat_shim => LXSTAT, false;
    lxstat64_shim => LXSTAT64, false;
}

alias_shims! {
    fxstat_common(version: c_int, fd: c_int, buffer: *mut stat) -> c_int;
    fxstat_shim => FXSTAT;
    fxstat64_shim => FXSTAT64;
}

alias_shims! {
    fxstatat_common(
        version: c_int,
        dirfd: c_int,
        path: *const c_char,
        buffer: *mut stat,
        flags: c_int,
    ) -> c_int;
    fxstatat_shim => FXSTATAT;
    fxstatat64_shim => FXSTATAT64;
}

/// Writes what a stat call found into the caller's buffer: the target's metadata through a reference
/// made here, for this write only; a local result was already written by the original.
///
/// # Safety
///
/// `buffer` is a writable, non-null `T` (the caller checked it is not null), and no reference to it is
/// alive.
unsafe fn write_out<T>(buffer: *mut T, found: Stat, convert: impl FnOnce(&Metadata) -> T) -> c_int {
    match found {
        Stat::Remote(metadata) => {
            // SAFETY: a writable `T` that nothing else refers to during this write (this function's
            // contract).
            if let Some(output) = unsafe { buffer.cast::<MaybeUninit<T>>().as_mut() } {
                output.write(convert(&metadata));
            }
            0
        }
        Stat::Local(result) => result,
    }
}

/// libc's `stat`/`lstat`. glibc's `stat` is `fstatat(AT_FDCWD, …)`: calling that original directly skips
/// a second trip through the layer (libc's `stat` calls the patched `fstatat`).
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
    match FSTATAT.installed() {
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
            if buffer.is_null() {
                return Outcome::Bypass("null buffer");
            }
            files::stat_path(None, path_view, follow_symlinks, |mapped| {
                // SAFETY: as for the caller's path, with a mapped path that outlives the call.
                unsafe { stat_original(hook, mapped.as_ptr(), buffer, follow_symlinks) }
            })
            .map(|found| {
                // SAFETY: stat(2) requires a writable `struct stat`, checked not null above.
                unsafe { write_out(buffer, found, files::to_stat) }
            })
        },
        -1,
    )
}

/// # Safety
///
/// fstat(2)'s contract: `buffer` is null or a writable `struct stat`.
#[inline(always)]
unsafe fn fstat_common(hook: &'static Hook<FstatFn>, fd: c_int, buffer: *mut stat) -> c_int {
    let fstatat = FSTATAT.installed();
    let original = || match fstatat {
        // SAFETY: libc's fstatat on the fd itself with the caller's buffer, which is what libc's fstat
        // does (calling it directly skips a second trip through the layer).
        Some(fstatat) => unsafe { fstatat(fd, c"".as_ptr(), buffer, libc::AT_EMPTY_PATH) },
        // SAFETY: libc's fstat with the caller's arguments.
        None => unsafe { (hook.original())(fd, buffer) },
    };
    // SAFETY: fstat(2)'s contract (this function's).
    unsafe { fstat_decide("fstat", fd, buffer, original) }
}

/// What `fstat` and `__fxstat` share once their original is chosen: the metadata of a remote file's
/// fd, from the target, written into `buffer`.
///
/// # Safety
///
/// `buffer` is null or a writable `struct stat`.
#[inline(always)]
unsafe fn fstat_decide(
    function: &'static str,
    fd: c_int,
    buffer: *mut stat,
    original: impl FnOnce() -> c_int,
) -> c_int {
    if buffer.is_null() {
        return original();
    }
    let Some((id, _guard)) = remote_file(fd) else {
        return original();
    };
    let saved = errno();
    run(function, || {
        files::fstat(fd, id).map(|metadata| {
            // SAFETY: a writable `struct stat` (this function's contract), checked not null above.
            unsafe { write_out(buffer, Stat::Remote(metadata), files::to_stat) }
        })
    })
    .finish(saved, original, -1)
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
    // SAFETY: fstatat(2)'s contract (this function's).
    unsafe {
        stat_at_decide(
            "fstatat",
            dirfd,
            path,
            flags,
            buffer,
            files::to_stat,
            original,
        )
    }
}

/// The decision shared by `fstatat` and `statx`, which differ in their original and in the type of
/// their buffer.
///
/// # Safety
///
/// `path` is null or NUL-terminated; `buffer` is null or a writable `B`.
#[inline(always)]
unsafe fn stat_at_decide<B>(
    function: &'static str,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    buffer: *mut B,
    convert: fn(&Metadata) -> B,
    original: impl FnOnce(*const c_char) -> c_int,
) -> Leaf<c_int> {
    leaf(
        function,
        || {
            // SAFETY: a NUL-terminated path (this function's contract); null is left to the original.
            unsafe { c_str(path) }.is_some_and(files::is_plainly_local)
        },
        || {
            // SAFETY: a NUL-terminated path (this function's contract); null is left to the original.
            let Some(path_view) = (unsafe { c_str(path) }) else {
                return Outcome::Bypass("null path");
            };
            if buffer.is_null() {
                return Outcome::Bypass("null buffer");
            }
            stat_at(dirfd, path_view, flags, |mapped| original(mapped.as_ptr())).map(|found| {
                // SAFETY: a writable `B` (this function's contract), checked not null above.
                unsafe { write_out(buffer, found, convert) }
            })
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

/// # Safety
///
/// statx(2)'s contract: `path` is null or NUL-terminated; `buffer` is null or a writable `struct statx`.
#[inline(never)]
unsafe fn statx_decide(
    hook: &'static Hook<StatxFn>,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mask: c_uint,
    buffer: *mut statx,
) -> Leaf<c_int> {
    let original = |path: *const c_char| {
        // SAFETY: libc's statx with the caller's arguments and a mapped path.
        unsafe { (hook.original())(dirfd, path, flags, mask, buffer) }
    };
    // SAFETY: statx(2)'s contract (this function's).
    unsafe {
        stat_at_decide(
            "statx",
            dirfd,
            path,
            flags,
            buffer,
            files::to_statx,
            original,
        )
    }
}

/// # Safety
///
/// stat(2)'s contract: `path` is null or NUL-terminated; `buffer` is null or a writable `struct stat`.
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
    if buffer.is_null() {
        return original(path);
    }
    let saved = errno();
    run("__xstat", || {
        files::stat_path(None, path_view, follow_symlinks, |mapped| {
            original(mapped.as_ptr())
        })
        .map(|found| {
            // SAFETY: a writable `struct stat`, checked not null above.
            unsafe { write_out(buffer, found, files::to_stat) }
        })
    })
    .finish(saved, || original(path), -1)
}

/// # Safety
///
/// fstat(2)'s contract: `buffer` is null or a writable `struct stat`.
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
    // SAFETY: __fxstat's contract (this function's).
    unsafe { fstat_decide("__fxstat", fd, buffer, original) }
}

/// # Safety
///
/// fstatat(2)'s contract: `path` is null or NUL-terminated; `buffer` is null or a writable `struct stat`.
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
    if buffer.is_null() {
        return original(path);
    }
    let saved = errno();
    run("__fxstatat", || {
        stat_at(dirfd, path_view, flags, |mapped| original(mapped.as_ptr())).map(|found| {
            // SAFETY: a writable `struct stat`, checked not null above.
            unsafe { write_out(buffer, found, files::to_stat) }
        })
    })
    .finish(saved, || original(path), -1)
}
