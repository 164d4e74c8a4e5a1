//! Directory streams: `opendir`, `fdopendir`, `readdir`, `readdir64` and `closedir` (the logic is in
//! [`crate::files::dirs`]).

use std::ffi::{c_char, c_int};

use libc::{DIR, dirent64};

use super::{alias_shims, remote_file};
use crate::{
    detour::{DetourGuard, c_str, errno, run},
    files::dirs,
    hooks::{Hook, Installer, hooks},
};

type OpendirFn = unsafe extern "C" fn(*const c_char) -> *mut DIR;
type FdopendirFn = unsafe extern "C" fn(c_int) -> *mut DIR;
type ReaddirFn = unsafe extern "C" fn(*mut DIR) -> *mut dirent64;
type ClosedirFn = unsafe extern "C" fn(*mut DIR) -> c_int;

hooks! {
    // SAFETY: the types above are glibc's prototypes of these functions (`readdir`'s `struct dirent` has
    // the layout of `struct dirent64` on 64-bit Linux, checked in `files::dirs`).
    unsafe {
        static OPENDIR: OpendirFn = c"opendir";
        static FDOPENDIR: FdopendirFn = c"fdopendir";
        static READDIR: ReaddirFn = c"readdir";
        static READDIR64: ReaddirFn = c"readdir64";
        static CLOSEDIR: ClosedirFn = c"closedir";
    }
}

/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(super) unsafe fn install(installer: &mut Installer) {
    // SAFETY: every shim is written for the C signature of the hook it is paired with and calls the
    // original only through that hook; the caller guarantees the single-threaded constructor.
    unsafe {
        installer.hook(&OPENDIR, opendir_shim, &[]);
        installer.hook(&FDOPENDIR, fdopendir_shim, &[]);
        installer.hook(&READDIR, readdir_shim, &[]);
        installer.hook(&READDIR64, readdir64_shim, &[]);
        installer.hook(&CLOSEDIR, closedir_shim, &[]);
    }
}

alias_shims! {
    readdir_common(dir: *mut DIR) -> *mut dirent64;
    readdir_shim => READDIR;
    readdir64_shim => READDIR64;
}

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
    let Some((id, _guard)) = remote_file(fd) else {
        return original();
    };
    let saved = errno();
    run("fdopendir", || dirs::fdopendir(fd, id, original)).finish(
        saved,
        original,
        std::ptr::null_mut(),
    )
}

/// # Safety
///
/// readdir(3)'s contract: `dir` is a stream `opendir`/`fdopendir` returned and not yet closed.
#[inline(always)]
unsafe fn readdir_common(hook: &'static Hook<ReaddirFn>, dir: *mut DIR) -> *mut dirent64 {
    let original = || {
        // SAFETY: libc's readdir with the caller's stream (this function's contract).
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
