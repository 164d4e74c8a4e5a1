//! `close`, `dup`, `dup2`, `dup3`, `fcntl(F_DUPFD*)` and `close_range`: the calls that keep the fd table
//! right, installed in every mode (the table also tracks sockets and the layer's own connection).
//!
//! `close_range` (which glibc's `closefrom` calls too) closes every fd in its range except the layer's
//! own connection: the program asked to close what it had, and the layer's socket is not the program's
//! (it lives at a high, close-on-exec fd, out of the program's way). Remote files and sockets in the range
//! are forgotten like on `close`.

use std::ffi::{c_int, c_uint};

use super::{PRIVATE, alias_shims};
use crate::{
    detour::{DetourGuard, Leaf, errno, leaf, run},
    fd_table::{FDS, FdEntry},
    files,
    hooks::{Hook, Installer, hooks},
};

type CloseFn = unsafe extern "C" fn(c_int) -> c_int;
type Dup2Fn = unsafe extern "C" fn(c_int, c_int) -> c_int;
type Dup3Fn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
type FcntlFn = unsafe extern "C" fn(c_int, c_int, usize) -> c_int;
type CloseRangeFn = unsafe extern "C" fn(c_uint, c_uint, c_int) -> c_int;

hooks! {
    // SAFETY: the types above are glibc's prototypes (`fcntl`'s optional argument read as a fixed
    // word, see the parent module's docs).
    unsafe {
        static CLOSE: CloseFn = c"close";
        static CLOSE_NOCANCEL: CloseFn = c"__close_nocancel";
        static DUP: CloseFn = c"dup";
        static DUP2: Dup2Fn = c"dup2";
        static DUP3: Dup3Fn = c"dup3";
        static FCNTL: FcntlFn = c"fcntl";
        static FCNTL64: FcntlFn = c"fcntl64";
        static CLOSE_RANGE: CloseRangeFn = c"close_range";
    }
}

/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(super) unsafe fn install(installer: &mut Installer) {
    // SAFETY: every shim is written for the C signature of the hook it is paired with and calls the
    // original only through that hook; the caller guarantees the single-threaded constructor.
    unsafe {
        installer.hook(&CLOSE, close_shim, &[]);
        installer.hook(&CLOSE_NOCANCEL, close_nocancel_shim, PRIVATE);
        installer.hook(&DUP, dup_shim, &[]);
        installer.hook(&DUP2, dup2_shim, &[]);
        installer.hook(&DUP3, dup3_shim, &[]);
        installer.hook(&FCNTL, fcntl_shim, &[]);
        installer.hook(&FCNTL64, fcntl64_shim, &[]);
        installer.hook(&CLOSE_RANGE, close_range_shim, &[]);
    }
}

alias_shims! {
    close_common(fd: c_int) -> c_int;
    close_shim => CLOSE;
    close_nocancel_shim => CLOSE_NOCANCEL;
}

alias_shims! {
    fcntl_common(fd: c_int, command: c_int, argument: usize) -> c_int;
    fcntl_shim => FCNTL;
    fcntl64_shim => FCNTL64;
}

/// # Safety
///
/// None beyond close(2)'s: no pointers are involved (it is `unsafe` to fit [`alias_shims!`]).
#[inline(always)]
unsafe fn close_common(hook: &'static Hook<CloseFn>, fd: c_int) -> c_int {
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

/// # Safety
///
/// fcntl(2)'s contract for `command`: `argument` is whatever that command takes (an int, or a pointer
/// to the struct it reads or fills), passed on unchanged.
#[inline(always)]
unsafe fn fcntl_common(
    hook: &'static Hook<FcntlFn>,
    fd: c_int,
    command: c_int,
    argument: usize,
) -> c_int {
    let original = || {
        // SAFETY: libc's fcntl with the caller's arguments, the optional one passed on as it came (this
        // function's contract).
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

unsafe extern "C" fn close_range_shim(first: c_uint, last: c_uint, flags: c_int) -> c_int {
    let original = |first: c_uint, last: c_uint| {
        // SAFETY: libc's close_range with the caller's flags over (part of) the caller's range; no
        // pointers are involved.
        unsafe { (CLOSE_RANGE.original())(first, last, flags) }
    };
    // Marking fds close-on-exec leaves them open (the layer's socket already is close-on-exec).
    if flags & (libc::CLOSE_RANGE_CLOEXEC as c_int) != 0 {
        return original(first, last);
    }
    let Some(_guard) = DetourGuard::enter() else {
        return original(first, last);
    };
    let saved = errno();
    run("close_range", || files::close_range(first, last, original)).finish(
        saved,
        || original(first, last),
        -1,
    )
}
