//! The kernel interfaces of the system-call path that the standard library does not wrap: seccomp
//! (installing the filter, asking what the kernel supports), the notification listener's ioctls,
//! another process's memory, descriptors taken from or given to another process, `SCM_RIGHTS`.
//!
//! This is the only module of the crate with `unsafe` code. Each function here is safe to call
//! (its arguments cannot make it unsound) except [`install_filter`], whose obligation is in its
//! `# Safety` section. The calls on the program's sockets are its submodule `socket.rs`.

use std::{
    ffi::CString,
    io,
    mem::size_of,
    os::{
        fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd},
        unix::net::UnixStream,
    },
};

mod socket;

pub(crate) use socket::{
    accept, bind, connect, inode, is_nonblocking, is_readable, listen, peer_name, receive_from,
    receive_message, receive_timeout, send_message, socket_kind, socket_name, wait_readable,
};

/// `SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP` (Linux 6.6): the kernel wakes the supervisor on the
/// notifying task's CPU and switches to it at once, which shortens every round trip.
const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: u64 = 1;

/// One system call waiting for the supervisor's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Notification {
    /// The kernel's id for this call; every answer names it.
    pub(crate) id: u64,
    /// The calling thread's id, in the supervisor's PID namespace.
    pub(crate) pid: u32,
    /// The system call's number.
    pub(crate) nr: i32,
    /// The caller's `AUDIT_ARCH_*`.
    pub(crate) arch: u32,
    /// The raw arguments.
    pub(crate) args: [u64; 6],
}

/// The notification listener of a filter: the supervisor's end of every intercepted call.
#[derive(Debug)]
pub(crate) struct Listener(OwnedFd);

impl Listener {
    /// Wraps a listener descriptor returned by `seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER)`.
    pub(crate) fn new(fd: OwnedFd) -> Self {
        Self(fd)
    }

    /// Asks the kernel to switch straight to the supervisor when a call arrives (Linux 6.6+;
    /// older kernels keep working without it).
    pub(crate) fn request_sync_wake_up(&self) {
        // SAFETY: SET_FLAGS takes its flags by value in the third argument; no memory is passed.
        let result = unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SET_FLAGS as _,
                SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP,
            )
        };
        if result != 0 {
            tracing::debug!(error = %io::Error::last_os_error(), "no synchronous wake-up for notifications");
        }
    }

    /// Waits for the next intercepted call. `ENOENT` means the caller died before it could be
    /// handed over (the caller tries again).
    pub(crate) fn receive(&self) -> io::Result<Notification> {
        // SAFETY: `seccomp_notif` is a plain C struct; the kernel requires it zeroed before RECV.
        let mut raw: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: RECV writes one `seccomp_notif` to the pointer, which points at `raw`, alive and
        // writable for the call.
        let result = unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_RECV as _,
                &raw mut raw,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Notification {
            id: raw.id,
            pid: raw.pid,
            nr: raw.data.nr,
            arch: raw.data.arch,
            args: raw.data.args,
        })
    }

    fn respond(&self, id: u64, value: i64, error: i32, flags: u32) -> io::Result<()> {
        let mut response = libc::seccomp_notif_resp {
            id,
            val: value,
            error,
            flags,
        };
        // SAFETY: SEND reads one `seccomp_notif_resp` from the pointer, which points at
        // `response`, alive for the call.
        let result = unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_SEND as _,
                &raw mut response,
            )
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Lets the call run in the kernel as if no filter had stopped it.
    pub(crate) fn continue_call(&self, id: u64) -> io::Result<()> {
        self.respond(id, 0, 0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32)
    }

    /// Makes the call return `-1` with `errno`.
    pub(crate) fn fail(&self, id: u64, errno: i32) -> io::Result<()> {
        self.respond(id, 0, -errno, 0)
    }

    /// Makes the call return `value`.
    pub(crate) fn answer(&self, id: u64, value: i64) -> io::Result<()> {
        self.respond(id, value, 0, 0)
    }

    /// Whether call `id` is still waiting: its caller has not died, so memory read from its pid
    /// belongs to it (and not to a process that got the pid since).
    pub(crate) fn id_valid(&self, id: u64) -> bool {
        let mut id = id;
        // SAFETY: ID_VALID reads one u64 from the pointer, which points at `id`.
        let result = unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ID_VALID as _,
                &raw mut id,
            )
        };
        result == 0
    }

    /// Installs a copy of `fd` in the caller's descriptor table and makes it the call's result
    /// (`SECCOMP_ADDFD_FLAG_SEND`: both happen, or neither). Returns the descriptor's number.
    pub(crate) fn send_fd(&self, id: u64, fd: BorrowedFd<'_>, cloexec: bool) -> io::Result<i32> {
        self.add_fd(id, fd, libc::SECCOMP_ADDFD_FLAG_SEND as u32, 0, cloexec)
    }

    fn add_fd(
        &self,
        id: u64,
        fd: BorrowedFd<'_>,
        flags: u32,
        newfd: u32,
        cloexec: bool,
    ) -> io::Result<i32> {
        let mut request = libc::seccomp_notif_addfd {
            id,
            flags,
            srcfd: fd.as_raw_fd() as u32,
            newfd,
            newfd_flags: if cloexec { libc::O_CLOEXEC as u32 } else { 0 },
        };
        // SAFETY: ADDFD reads one `seccomp_notif_addfd` from the pointer, which points at
        // `request`; `srcfd` is a descriptor this process holds open for the call (`fd` borrows it).
        let result = unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                libc::SECCOMP_IOCTL_NOTIF_ADDFD as _,
                &raw mut request,
            )
        };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(result)
    }
}

/// Whether this kernel can run the system-call path: user notification with `CONTINUE`, `ADDFD`
/// with `SEND` (Linux 5.14), and killable waits after receipt (Linux 5.19). `Err` names the first
/// facility that is missing.
pub(crate) fn check_kernel() -> Result<(), &'static str> {
    let mut action: u32 = libc::SECCOMP_RET_USER_NOTIF;
    // SAFETY: GET_ACTION_AVAIL reads one u32 from the pointer, which points at `action`.
    let available = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &raw mut action,
        )
    };
    if available != 0 {
        return Err("seccomp user notification (SECCOMP_RET_USER_NOTIF, Linux 5.0)");
    }
    let mut sizes = libc::seccomp_notif_sizes {
        seccomp_notif: 0,
        seccomp_notif_resp: 0,
        seccomp_data: 0,
    };
    // SAFETY: GET_NOTIF_SIZES writes one `seccomp_notif_sizes` to the pointer, which points at
    // `sizes`.
    let sized = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_NOTIF_SIZES,
            0,
            &raw mut sizes,
        )
    };
    if sized != 0 || usize::from(sizes.seccomp_notif) < size_of::<libc::seccomp_notif>() {
        return Err("seccomp notification sizes this build understands");
    }
    let (major, minor) = kernel_version();
    if (major, minor) < (5, 19) {
        return Err(
            "SECCOMP_ADDFD_FLAG_SEND (Linux 5.14) and SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (Linux 5.19)",
        );
    }
    Ok(())
}

/// The running kernel's major and minor version (0.0 when `uname` cannot be parsed).
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut numbers = release
        .trim()
        .split(['.', '-'])
        .map(|part| part.parse::<u32>().unwrap_or(0));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// Installs `program` as a seccomp filter of the calling thread with a notification listener,
/// and returns the listener's descriptor number (close-on-exec). With `no_new_privs`, first sets
/// `PR_SET_NO_NEW_PRIVS`, which the kernel requires of a caller without `CAP_SYS_ADMIN`.
/// Only system calls: no allocation, no lock, so it may run between `fork` and `exec`.
///
/// # Safety
/// Every later system call of this thread (and of processes it starts) that `program` sends to
/// user notification blocks until a supervisor answers it through the listener: the caller must
/// make sure one will (or that the thread makes no such call before handing the listener over).
pub(crate) unsafe fn install_filter(
    program: &[libc::sock_filter],
    no_new_privs: bool,
) -> io::Result<RawFd> {
    if no_new_privs {
        // SAFETY: PR_SET_NO_NEW_PRIVS takes integers only.
        let result = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let length =
        u16::try_from(program.len()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let fprog = libc::sock_fprog {
        len: length,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: SET_MODE_FILTER reads `fprog` and the `len` instructions it points at, all alive
    // for the call; the kernel copies them.
    let result = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
            &raw const fprog,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(result as RawFd)
}

/// `write(2)` of all of `bytes` to a raw descriptor, with no allocation (for use between `fork`
/// and `exec`).
pub(crate) fn write_all_raw(fd: RawFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        // SAFETY: writes at most `bytes.len()` bytes read from `bytes`, alive for the call.
        let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if written < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        bytes = &bytes[written as usize..];
    }
    Ok(())
}

/// `read(2)` of exactly `buffer.len()` bytes from a raw descriptor, with no allocation;
/// `UnexpectedEof` when the writer closed first.
pub(crate) fn read_exact_raw(fd: RawFd, buffer: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        let rest = &mut buffer[filled..];
        // SAFETY: reads at most `rest.len()` bytes into `rest`, alive and writable for the call.
        let count = unsafe { libc::read(fd, rest.as_mut_ptr().cast(), rest.len()) };
        if count < 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        if count == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += count as usize;
    }
    Ok(())
}

/// A copy of descriptor `fd` of process `pid` (`pidfd_open` + `pidfd_getfd`, Linux 5.6).
pub(crate) fn take_descriptor(pid: u32, fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes integers and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `pidfd` was just returned by the kernel and is owned by nothing else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    // SAFETY: pidfd_getfd takes integers and returns a new descriptor or -1.
    let taken = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if taken < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above, a fresh descriptor of ours.
    Ok(unsafe { OwnedFd::from_raw_fd(taken as RawFd) })
}

/// Reads up to `buffer.len()` bytes of process `pid`'s memory at `address`; fewer when the range
/// runs into unmapped memory.
pub(crate) fn read_memory(pid: u32, address: u64, buffer: &mut [u8]) -> io::Result<usize> {
    let local = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: buffer.len(),
    };
    // SAFETY: the kernel writes at most `buffer.len()` bytes into `buffer` (alive and writable);
    // the remote range is checked by the kernel against the other process's mappings.
    let count = unsafe { libc::process_vm_readv(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if count < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(count as usize)
}

/// Writes all of `bytes` into process `pid`'s memory at `address` (`EFAULT` when the range is
/// not writable there).
pub(crate) fn write_memory(pid: u32, address: u64, bytes: &[u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: bytes.as_ptr().cast_mut().cast(),
        iov_len: bytes.len(),
    };
    let remote = libc::iovec {
        iov_base: address as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    // SAFETY: the kernel only reads `bytes.len()` bytes from `bytes` (alive); the remote range is
    // checked by the kernel against the other process's mappings.
    let count = unsafe { libc::process_vm_writev(pid as libc::pid_t, &local, 1, &remote, 1, 0) };
    if count < 0 {
        return Err(io::Error::last_os_error());
    }
    if count as usize != bytes.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// A new anonymous in-memory file (`memfd_create`, close-on-exec).
pub(crate) fn memfd(name: &str) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `name` is a NUL-terminated string alive for the call.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `faccessat2(AT_FDCWD, path, mode, flags)` in this process.
pub(crate) fn access(path: &[u8], mode: i32, flags: i32) -> io::Result<()> {
    let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `path` is a NUL-terminated string alive for the call.
    let result = unsafe {
        libc::syscall(
            libc::SYS_faccessat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            mode,
            flags,
        )
    };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `open(2)` in this process, with raw flags (close-on-exec always added: the descriptor is
/// only ever handed to the program through [`Listener::send_fd`]).
pub(crate) fn open(path: &[u8], flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let path = CString::new(path).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `path` is a NUL-terminated string alive for the call.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One `recvmsg` into `buffer` that takes at most one descriptor passed as `SCM_RIGHTS`.
pub(crate) fn receive_with_fd(
    stream: &UnixStream,
    buffer: &mut [u8],
) -> io::Result<(usize, Option<OwnedFd>)> {
    // Aligned room for one control message with a few ints.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buffer.as_mut_ptr().cast(),
        iov_len: buffer.len(),
    };
    // SAFETY: `msghdr` is a plain C struct for which all-zero bytes are a valid value.
    let mut message: libc::msghdr = unsafe { std::mem::zeroed() };
    message.msg_iov = &raw mut iov;
    message.msg_iovlen = 1;
    message.msg_control = control.as_mut_ptr().cast();
    message.msg_controllen = size_of::<[u64; 8]>();
    let count = loop {
        // SAFETY: `message` points at `iov` (→ `buffer`) and `control`, both alive and writable
        // for the call, with their true lengths.
        let count =
            unsafe { libc::recvmsg(stream.as_raw_fd(), &raw mut message, libc::MSG_CMSG_CLOEXEC) };
        if count >= 0 {
            break count as usize;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    };
    let mut received = Vec::new();
    // SAFETY: `message` was filled by recvmsg; the CMSG_* macros walk its control buffer within
    // `msg_controllen`, and each SCM_RIGHTS payload holds ints the kernel just installed as
    // descriptors of this process, which nothing else owns.
    unsafe {
        let mut header = libc::CMSG_FIRSTHDR(&raw const message);
        while !header.is_null() {
            if (*header).cmsg_level == libc::SOL_SOCKET && (*header).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(header).cast::<libc::c_int>();
                let bytes = (*header).cmsg_len as usize - libc::CMSG_LEN(0) as usize;
                for index in 0..bytes / size_of::<libc::c_int>() {
                    let fd: RawFd = std::ptr::read_unaligned(data.add(index));
                    received.push(OwnedFd::from_raw_fd(fd));
                }
            }
            header = libc::CMSG_NXTHDR(&raw const message, header);
        }
    }
    if received.len() > 1 {
        return Err(io::Error::other(
            "the agent passed more than one descriptor",
        ));
    }
    if received.is_empty() && message.msg_flags & libc::MSG_CTRUNC != 0 {
        return Err(io::Error::from_raw_os_error(libc::EMFILE));
    }
    Ok((count, received.pop()))
}

/// Makes this process ignore `SIGINT` and `SIGQUIT`: typed at the terminal they reach the whole
/// foreground process group, and the supervisor must outlive the program it serves so that the
/// program's last calls are still answered. (Called once the program runs: the program itself
/// keeps the default dispositions.)
pub(crate) fn ignore_terminal_signals() {
    for signal in [libc::SIGINT, libc::SIGQUIT] {
        // SAFETY: SIG_IGN installs no handler code, so no code of ours can run in signal context.
        unsafe { libc::signal(signal, libc::SIG_IGN) };
    }
}

/// An all-zero `struct stat`, to be filled field by field.
pub(crate) fn zeroed_stat() -> libc::stat {
    // SAFETY: `stat` is a plain C struct of integers for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// An all-zero `struct statx`, to be filled field by field.
pub(crate) fn zeroed_statx() -> libc::statx {
    // SAFETY: `statx` is a plain C struct of integers for which all-zero bytes are a valid value.
    unsafe { std::mem::zeroed() }
}

/// The bytes of a plain C struct, as the kernel would copy them out.
pub(crate) fn struct_bytes<T: PlainStruct>(value: &T) -> Vec<u8> {
    // SAFETY: `PlainStruct` types are C structs of integers whose padding is spelled out as fields
    // (`__pad0`, `__statx_pad*`), so every byte is an initialised integer byte; the slice covers
    // exactly `value`, borrowed for the copy.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// C structs of integers with no implicit padding, which the kernel copies out byte for byte.
pub(crate) trait PlainStruct {}
impl PlainStruct for libc::stat {}
impl PlainStruct for libc::statx {}

/// Whether this process runs as root (then the filter needs no `PR_SET_NO_NEW_PRIVS`, and
/// set-user-ID programs the user starts keep working).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Makes `command`'s child install `program` before it `exec`s: it writes its pid and the
/// listener's descriptor number (4 + 4 bytes, native order) to `report`, then waits for one byte
/// on `go` (1: the supervisor holds the listener; anything else, or the end of the pipe: fail the
/// spawn). Both are raw descriptors the parent keeps open until `spawn` returns.
pub(crate) fn install_before_exec(
    command: &mut std::process::Command,
    program: Vec<libc::sock_filter>,
    report: RawFd,
    go: RawFd,
    no_new_privs: bool,
) {
    use std::os::unix::process::CommandExt;
    let hook = move || -> io::Result<()> {
        // If the supervisor dies, the program's intercepted calls could only fail (`ENOSYS`):
        // it gets SIGTERM instead, as from a session that ended.
        // SAFETY: PR_SET_PDEATHSIG takes integers only.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: this runs in the forked child just before `exec`; the only calls made until
        // `exec` (write, read, close) are not intercepted by any filter this crate builds, and the
        // supervisor takes the listener before it says go.
        let listener = unsafe { install_filter(&program, no_new_privs)? };
        let mut message = [0u8; 8];
        message[..4].copy_from_slice(&std::process::id().to_ne_bytes());
        message[4..].copy_from_slice(&listener.to_ne_bytes());
        write_all_raw(report, &message)?;
        let mut answer = [0u8; 1];
        read_exact_raw(go, &mut answer)?;
        // SAFETY: `listener` was returned by the kernel above and is owned by nobody else here.
        unsafe { libc::close(listener) };
        if answer[0] != 1 {
            return Err(io::Error::other(
                "the supervisor did not take over the listener",
            ));
        }
        Ok(())
    };
    // SAFETY: the hook only makes system calls (prctl, seccomp, write, read, close) and touches
    // memory moved into it before the fork: no allocation, no lock, so it is sound between `fork`
    // and `exec` even in a multi-threaded parent.
    unsafe { command.pre_exec(hook) };
}

/// A copy of descriptor `fd` of the thread `tid`'s process (threads share the descriptor table).
/// `PIDFD_THREAD` (Linux 6.9) names the thread itself; older kernels need the thread group's id.
pub(crate) fn take_thread_descriptor(tid: u32, fd: RawFd) -> io::Result<OwnedFd> {
    const PIDFD_THREAD: libc::c_uint = libc::O_EXCL as libc::c_uint;
    // SAFETY: pidfd_open takes integers and returns a new descriptor or -1.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, tid as libc::pid_t, PIDFD_THREAD) };
    if pidfd < 0 {
        let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
        let tgid = status
            .lines()
            .find_map(|line| line.strip_prefix("Tgid:"))
            .and_then(|value| value.trim().parse::<u32>().ok())
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
        return take_descriptor(tgid, fd);
    }
    // SAFETY: `pidfd` was just returned by the kernel and is owned by nothing else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    // SAFETY: pidfd_getfd takes integers and returns a new descriptor or -1.
    let taken = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if taken < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor of ours.
    Ok(unsafe { OwnedFd::from_raw_fd(taken as RawFd) })
}

/// This machine's `struct utsname`, as bytes (six NUL-padded fields of 65 bytes).
pub(crate) fn uname_bytes() -> io::Result<Vec<u8>> {
    // SAFETY: `utsname` is a plain C struct of byte arrays; all-zero bytes are a valid value.
    let mut name: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: uname writes one `utsname` into `name`, alive and writable for the call.
    if unsafe { libc::uname(&raw mut name) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `utsname` is byte arrays only (no padding); the slice covers exactly `name`.
    let bytes = unsafe {
        std::slice::from_raw_parts((&raw const name).cast::<u8>(), size_of::<libc::utsname>())
    };
    Ok(bytes.to_vec())
}
