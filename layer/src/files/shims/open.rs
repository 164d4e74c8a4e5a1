//! `open`, `open64`, their `_nocancel` twins, `openat` and `openat64`.

use std::ffi::{c_char, c_int, c_uint};

use super::{PRIVATE, alias_shims};
use crate::{
    detour::{Leaf, Outcome, c_str, leaf},
    files,
    hooks::{Hook, Installer, hooks},
};

type OpenFn = unsafe extern "C" fn(*const c_char, c_int, c_uint) -> c_int;
type OpenatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, c_uint) -> c_int;

hooks! {
    // SAFETY: the types above are glibc's prototypes (`mode` read as a fixed argument, see the
    // parent module's docs).
    unsafe {
        static OPEN: OpenFn = c"open";
        static OPEN64: OpenFn = c"open64";
        static OPEN_NOCANCEL: OpenFn = c"__open_nocancel";
        static OPEN64_NOCANCEL: OpenFn = c"__open64_nocancel";
        static OPENAT: OpenatFn = c"openat";
        static OPENAT64: OpenatFn = c"openat64";
    }
}

/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(super) unsafe fn install(installer: &mut Installer) {
    // SAFETY: every shim is written for the C signature of the hook it is paired with and calls the
    // original only through that hook; the caller guarantees the single-threaded constructor.
    unsafe {
        installer.hook(&OPEN, open_shim, &[]);
        installer.hook(&OPEN64, open64_shim, &[]);
        installer.hook(&OPEN_NOCANCEL, open_nocancel_shim, PRIVATE);
        installer.hook(&OPEN64_NOCANCEL, open64_nocancel_shim, PRIVATE);
        installer.hook(&OPENAT, openat_shim, &[]);
        installer.hook(&OPENAT64, openat64_shim, &[]);
    }
}

alias_shims! {
    leaf open_decide(path: *const c_char, flags: c_int, mode: c_uint) -> c_int;
    open_shim => OPEN;
    open64_shim => OPEN64;
    open_nocancel_shim => OPEN_NOCANCEL;
    open64_nocancel_shim => OPEN64_NOCANCEL;
}

alias_shims! {
    leaf openat_decide(dirfd: c_int, path: *const c_char, flags: c_int, mode: c_uint) -> c_int;
    openat_shim => OPENAT;
    openat64_shim => OPENAT64;
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
