//! Calls on one or two paths: `access`, `faccessat`, `readlink`, `mkdir`, `unlink`, `rmdir`, `rename`, and
//! the extended attributes `getxattr`, `lgetxattr`, `listxattr`, `llistxattr` (which `ls -l` asks for
//! every file it lists).

use std::ffi::{CStr, c_char, c_int, c_void};

use libc::{mode_t, size_t, ssize_t};

use super::alias_shims;
use crate::{
    detour::{DetourGuard, Leaf, Outcome, c_str, errno, leaf, out_buffer, run},
    files,
    hooks::{Hook, Installer, hooks},
};

type AccessFn = unsafe extern "C" fn(*const c_char, c_int) -> c_int;
type FaccessatFn = unsafe extern "C" fn(c_int, *const c_char, c_int, c_int) -> c_int;
type ReadlinkFn = unsafe extern "C" fn(*const c_char, *mut c_char, size_t) -> ssize_t;
type MkdirFn = unsafe extern "C" fn(*const c_char, mode_t) -> c_int;
type PathFn = unsafe extern "C" fn(*const c_char) -> c_int;
type RenameFn = unsafe extern "C" fn(*const c_char, *const c_char) -> c_int;
type GetxattrFn =
    unsafe extern "C" fn(*const c_char, *const c_char, *mut c_void, size_t) -> ssize_t;
type ListxattrFn = unsafe extern "C" fn(*const c_char, *mut c_char, size_t) -> ssize_t;

hooks! {
    // SAFETY: the types above are glibc's prototypes of these functions.
    unsafe {
        static ACCESS: AccessFn = c"access";
        static FACCESSAT: FaccessatFn = c"faccessat";
        static READLINK: ReadlinkFn = c"readlink";
        static MKDIR: MkdirFn = c"mkdir";
        static UNLINK: PathFn = c"unlink";
        static RMDIR: PathFn = c"rmdir";
        static RENAME: RenameFn = c"rename";
        static GETXATTR: GetxattrFn = c"getxattr";
        static LGETXATTR: GetxattrFn = c"lgetxattr";
        static LISTXATTR: ListxattrFn = c"listxattr";
        static LLISTXATTR: ListxattrFn = c"llistxattr";
    }
}

/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(super) unsafe fn install(installer: &mut Installer) {
    // SAFETY: every shim is written for the C signature of the hook it is paired with and calls the
    // original only through that hook; the caller guarantees the single-threaded constructor.
    unsafe {
        installer.hook(&ACCESS, access_shim, &[]);
        installer.hook(&FACCESSAT, faccessat_shim, &[]);
        installer.hook(&READLINK, readlink_shim, &[]);
        installer.hook(&MKDIR, mkdir_shim, &[]);
        installer.hook(&UNLINK, unlink_shim, &[]);
        installer.hook(&RMDIR, rmdir_shim, &[]);
        installer.hook(&RENAME, rename_shim, &[]);
        installer.hook(&GETXATTR, getxattr_shim, &[]);
        installer.hook(&LGETXATTR, lgetxattr_shim, &[]);
        installer.hook(&LISTXATTR, listxattr_shim, &[]);
        installer.hook(&LLISTXATTR, llistxattr_shim, &[]);
    }
}

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

alias_shims! {
    leaf getxattr_decide(
        path: *const c_char,
        name: *const c_char,
        value: *mut c_void,
        size: size_t,
    ) -> ssize_t;
    getxattr_shim => GETXATTR, true;
    lgetxattr_shim => LGETXATTR, false;
}

alias_shims! {
    leaf listxattr_decide(path: *const c_char, list: *mut c_char, size: size_t) -> ssize_t;
    listxattr_shim => LISTXATTR, true;
    llistxattr_shim => LLISTXATTR, false;
}

/// # Safety
///
/// getxattr(2)'s contract: `path` and `name` are null or NUL-terminated; `value` is valid for `size`
/// writable bytes (or `size` is 0).
#[inline(never)]
unsafe fn getxattr_decide(
    hook: &'static Hook<GetxattrFn>,
    path: *const c_char,
    name: *const c_char,
    value: *mut c_void,
    size: size_t,
    follow_symlinks: bool,
) -> Leaf<ssize_t> {
    leaf(
        "getxattr",
        || {
            // SAFETY: a NUL-terminated path, as the function requires; null is left to the original.
            unsafe { c_str(path) }.is_some_and(files::is_plainly_local)
        },
        || {
            // SAFETY: getxattr(2) takes NUL-terminated path and name; null is left to the original.
            let (Some(path_view), Some(name_view)) =
                (unsafe { c_str(path) }, unsafe { c_str(name) })
            else {
                return Outcome::Bypass("null path or name");
            };
            // SAFETY: getxattr(2) requires `value` to be valid for `size` writable bytes when `size` is
            // not 0; with 0 it only asks for the length and `value` is not used.
            let Some(view) = (unsafe { out_buffer(value, size) }) else {
                return Outcome::Bypass("null buffer");
            };
            files::getxattr(path_view, name_view, view, follow_symlinks, |mapped| {
                // SAFETY: libc's function with the caller's name and buffer and a mapped path.
                unsafe { (hook.original())(mapped.as_ptr(), name, value, size) }
            })
        },
        -1,
    )
}

/// # Safety
///
/// listxattr(2)'s contract: `path` is null or NUL-terminated; `list` is valid for `size` writable bytes
/// (or `size` is 0).
#[inline(never)]
unsafe fn listxattr_decide(
    hook: &'static Hook<ListxattrFn>,
    path: *const c_char,
    list: *mut c_char,
    size: size_t,
    follow_symlinks: bool,
) -> Leaf<ssize_t> {
    leaf(
        "listxattr",
        || {
            // SAFETY: a NUL-terminated path, as the function requires; null is left to the original.
            unsafe { c_str(path) }.is_some_and(files::is_plainly_local)
        },
        || {
            // SAFETY: listxattr(2) takes a NUL-terminated path; null is left to the original.
            let Some(path_view) = (unsafe { c_str(path) }) else {
                return Outcome::Bypass("null path");
            };
            // SAFETY: listxattr(2) requires `list` to be valid for `size` writable bytes when `size` is
            // not 0.
            let Some(view) = (unsafe { out_buffer(list.cast(), size) }) else {
                return Outcome::Bypass("null buffer");
            };
            files::listxattr(path_view, view, follow_symlinks, |mapped| {
                // SAFETY: libc's function with the caller's buffer and a mapped path.
                unsafe { (hook.original())(mapped.as_ptr(), list, size) }
            })
        },
        -1,
    )
}
