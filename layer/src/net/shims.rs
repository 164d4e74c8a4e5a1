//! The socket shims: `socket`, `connect`, `getpeername`, `getsockname`, `sendto`, `sendmsg`, `sendmmsg`, `recvfrom`,
//! `recvmsg`, `recvmmsg`, and for incoming traffic `bind`, `listen`, `accept`, `accept4`. Calls on sockets the layer does not manage cost one fd-table load (plus, for `connect` and
//! `sendto` with an address, the decision that the destination stays local).

use std::{
    ffi::{c_int, c_uint, c_void},
    mem::MaybeUninit,
};

use libc::{mmsghdr, msghdr, size_t, sockaddr, socklen_t, ssize_t};

use crate::{
    detour::{DetourGuard, Outcome, copy_out, errno, in_buffer, out_buffer, run, set_errno},
    fd_table::{FDS, FdEntry},
    hooks::{Hook, Installer, hooks},
    net,
};

type SocketFn = unsafe extern "C" fn(c_int, c_int, c_int) -> c_int;
type ConnectFn = unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;
type NameFn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
type SendtoFn = unsafe extern "C" fn(
    c_int,
    *const c_void,
    size_t,
    c_int,
    *const sockaddr,
    socklen_t,
) -> ssize_t;
type SendmsgFn = unsafe extern "C" fn(c_int, *const msghdr, c_int) -> ssize_t;
type SendmmsgFn = unsafe extern "C" fn(c_int, *mut mmsghdr, c_uint, c_int) -> c_int;
type RecvfromFn = unsafe extern "C" fn(
    c_int,
    *mut c_void,
    size_t,
    c_int,
    *mut sockaddr,
    *mut socklen_t,
) -> ssize_t;
type RecvmsgFn = unsafe extern "C" fn(c_int, *mut msghdr, c_int) -> ssize_t;
type RecvmmsgFn =
    unsafe extern "C" fn(c_int, *mut mmsghdr, c_uint, c_int, *mut libc::timespec) -> c_int;

hooks! {
    // SAFETY: the types above are glibc's prototypes of these functions.
    unsafe {
        static SOCKET: SocketFn = c"socket";
        static CONNECT: ConnectFn = c"connect";
        static GETPEERNAME: NameFn = c"getpeername";
        static GETSOCKNAME: NameFn = c"getsockname";
        static SENDTO: SendtoFn = c"sendto";
        static SENDMSG: SendmsgFn = c"sendmsg";
        static SENDMMSG: SendmmsgFn = c"sendmmsg";
        static RECVFROM: RecvfromFn = c"recvfrom";
        static RECVMSG: RecvmsgFn = c"recvmsg";
        static RECVMMSG: RecvmmsgFn = c"recvmmsg";
    }
}

/// Installs the socket hooks.
///
/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(crate) unsafe fn install(installer: &mut Installer) {
    // SAFETY: every shim below is written for the C signature of the hook it is paired with, and calls the
    // original only through that hook; the caller guarantees the single-threaded constructor.
    unsafe {
        installer.hook(&SOCKET, socket_shim, &[]);
        installer.hook(&CONNECT, connect_shim, &[]);
        installer.hook(&GETPEERNAME, getpeername_shim, &[]);
        installer.hook(&GETSOCKNAME, getsockname_shim, &[]);
        installer.hook(&SENDTO, sendto_shim, &[]);
        installer.hook(&SENDMSG, sendmsg_shim, &[]);
        installer.hook(&SENDMMSG, sendmmsg_shim, &[]);
        installer.hook(&RECVFROM, recvfrom_shim, &[]);
        installer.hook(&RECVMSG, recvmsg_shim, &[]);
        installer.hook(&RECVMMSG, recvmmsg_shim, &[]);
    }
}

unsafe extern "C" fn socket_shim(domain: c_int, kind: c_int, protocol: c_int) -> c_int {
    // SAFETY: libc's socket with the caller's arguments (no pointers).
    let fd = unsafe { (SOCKET.original())(domain, kind, protocol) };
    if fd < 0 || (domain != libc::AF_INET && domain != libc::AF_INET6) {
        return fd;
    }
    let Some(_guard) = DetourGuard::enter() else {
        return fd;
    };
    let saved = errno();
    let _ = run("socket", || {
        net::socket_created(fd, domain, kind);
        Outcome::Handled(())
    });
    set_errno(saved);
    fd
}

unsafe extern "C" fn connect_shim(fd: c_int, address: *const sockaddr, len: socklen_t) -> c_int {
    let original = |address: *const sockaddr, len: socklen_t| {
        // SAFETY: libc's connect with the caller's fd and the caller's address or a relay address that
        // outlives the call.
        unsafe { (CONNECT.original())(fd, address, len) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original(address, len);
    };
    // SAFETY: connect(2) requires `address` to be valid for `len` readable bytes.
    let Some(address_view) = (unsafe { in_buffer(address.cast(), len as usize) }) else {
        return original(address, len);
    };
    let saved = errno();
    run("connect", || {
        net::connect(fd, address_view, |relay| {
            original(relay.as_ptr().cast(), relay.len() as socklen_t)
        })
    })
    .finish(saved, || original(address, len), -1)
}

unsafe extern "C" fn getpeername_shim(
    fd: c_int,
    address: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    // SAFETY: the caller's arguments under getpeername(2)'s contract.
    unsafe { name_common(&GETPEERNAME, fd, address, len, net::peer_name) }
}

unsafe extern "C" fn getsockname_shim(
    fd: c_int,
    address: *mut sockaddr,
    len: *mut socklen_t,
) -> c_int {
    // SAFETY: the caller's arguments under getsockname(2)'s contract.
    unsafe { name_common(&GETSOCKNAME, fd, address, len, net::socket_name) }
}

/// # Safety
///
/// getpeername(2)'s contract: `len` points to the writable size of `address`'s buffer.
unsafe fn name_common(
    hook: &'static Hook<NameFn>,
    fd: c_int,
    address: *mut sockaddr,
    len: *mut socklen_t,
    logic: fn(c_int) -> Outcome<Vec<u8>>,
) -> c_int {
    let original = || {
        // SAFETY: libc's function with the caller's arguments.
        unsafe { (hook.original())(fd, address, len) }
    };
    if !is_managed(fd) {
        return original();
    }
    let Some(_guard) = DetourGuard::enter() else {
        return original();
    };
    // SAFETY: the caller passes a writable `socklen_t` with the buffer's size.
    let Some(len_view) = (unsafe { len.as_mut() }) else {
        return original();
    };
    // SAFETY: `address` is valid for `*len` writable bytes.
    let Some(buffer) = (unsafe { out_buffer(address.cast(), *len_view as usize) }) else {
        return original();
    };
    let saved = errno();
    run("getpeername/getsockname", || {
        logic(fd).map(|address| write_address(buffer, len_view, &address))
    })
    .finish(saved, original, -1)
}

/// Writes the socket address `bytes` into a caller's buffer, truncated as the kernel would, and
/// the full length into `len` (nothing for no bytes: an address the socket's family cannot hold).
fn write_address(buffer: &mut [MaybeUninit<u8>], len: &mut socklen_t, bytes: &[u8]) -> c_int {
    if !bytes.is_empty() {
        copy_out(buffer, bytes);
        *len = bytes.len() as socklen_t;
    }
    0
}

fn is_managed(fd: c_int) -> bool {
    matches!(FDS.get(fd), Some(FdEntry::Socket(info)) if info.managed)
}

unsafe extern "C" fn sendto_shim(
    fd: c_int,
    data: *const c_void,
    len: size_t,
    flags: c_int,
    destination: *const sockaddr,
    destination_len: socklen_t,
) -> ssize_t {
    let original = |destination: *const sockaddr, destination_len: socklen_t| {
        // SAFETY: libc's sendto with the caller's data and the caller's or a relay destination.
        unsafe { (SENDTO.original())(fd, data, len, flags, destination, destination_len) }
    };
    if destination.is_null() {
        return original(destination, destination_len);
    }
    let Some(_guard) = DetourGuard::enter() else {
        return original(destination, destination_len);
    };
    // SAFETY: sendto(2) requires `destination` to be valid for `destination_len` readable bytes.
    let Some(destination_view) =
        (unsafe { in_buffer(destination.cast(), destination_len as usize) })
    else {
        return original(destination, destination_len);
    };
    let saved = errno();
    run("sendto", || {
        net::send_to(fd, destination_view, |relay| {
            original(relay.as_ptr().cast(), relay.len() as socklen_t)
        })
    })
    .finish(saved, || original(destination, destination_len), -1)
}

unsafe extern "C" fn sendmsg_shim(fd: c_int, message: *const msghdr, flags: c_int) -> ssize_t {
    let original = |message: *const msghdr| {
        // SAFETY: libc's sendmsg with the caller's message or a copy of it naming a relay.
        unsafe { (SENDMSG.original())(fd, message, flags) }
    };
    // SAFETY: sendmsg(2) requires `message` to point to a valid `msghdr`; null is left to the original.
    let Some(message_view) = (unsafe { message.as_ref() }) else {
        return original(message);
    };
    if message_view.msg_name.is_null() {
        return original(message);
    }
    let Some(_guard) = DetourGuard::enter() else {
        return original(message);
    };
    // SAFETY: `msg_name` is valid for `msg_namelen` readable bytes (sendmsg(2)).
    let Some(name_view) = (unsafe {
        in_buffer(
            message_view.msg_name.cast_const(),
            message_view.msg_namelen as usize,
        )
    }) else {
        return original(message);
    };
    let saved = errno();
    run("sendmsg", || {
        net::send_to(fd, name_view, |relay| {
            let mut copy = *message_view;
            copy.msg_name = relay.as_ptr().cast_mut().cast();
            copy.msg_namelen = relay.len() as socklen_t;
            original(&copy)
        })
    })
    .finish(saved, || original(message), -1)
}

/// `sendmmsg` whose first message names an address: its messages in turn through `sendmsg`'s
/// shim (each to a relay when its address goes through the target), each with `msg_len`; like
/// `sendmmsg`, the number sent, or -1 when the first fails. Anything else goes to libc at once.
unsafe extern "C" fn sendmmsg_shim(
    fd: c_int,
    messages: *mut mmsghdr,
    count: c_uint,
    flags: c_int,
) -> c_int {
    // SAFETY: libc's sendmmsg with the caller's arguments.
    let original = || unsafe { (SENDMMSG.original())(fd, messages, count, flags) };
    // SAFETY: sendmmsg(2) requires `messages` to point to `count` valid `mmsghdr`s; null and an
    // empty batch are left to the original.
    let named = count > 0
        && unsafe { messages.as_ref() }.is_some_and(|first| !first.msg_hdr.msg_name.is_null());
    if !named {
        return original();
    }
    let mut sent: c_uint = 0;
    while sent < count.min(libc::UIO_MAXIOV as c_uint) {
        // SAFETY: as above: entry `sent` is valid and writable.
        let entry = unsafe { &mut *messages.add(sent as usize) };
        // SAFETY: the caller's message, valid as sendmsg(2) requires (sendmmsg's contract).
        let length = unsafe { sendmsg_shim(fd, &entry.msg_hdr, flags) };
        if length < 0 {
            return if sent == 0 { -1 } else { sent as c_int };
        }
        entry.msg_len = length as c_uint;
        sent += 1;
    }
    sent as c_int
}

unsafe extern "C" fn recvfrom_shim(
    fd: c_int,
    buffer: *mut c_void,
    len: size_t,
    flags: c_int,
    source: *mut sockaddr,
    source_len: *mut socklen_t,
) -> ssize_t {
    // SAFETY: libc's recvfrom with the caller's arguments.
    let original = || unsafe { (RECVFROM.original())(fd, buffer, len, flags, source, source_len) };
    if source.is_null() || source_len.is_null() || !is_managed(fd) {
        return original();
    }
    // SAFETY: recvfrom(2) requires `source_len` to point to the writable size of `source`'s buffer.
    let capacity = unsafe { *source_len };
    let received = original();
    if received < 0 {
        return received;
    }
    let Some(_guard) = DetourGuard::enter() else {
        return received;
    };
    // SAFETY: as above; recvfrom stored the address's full length there.
    let Some(len_view) = (unsafe { source_len.as_mut() }) else {
        return received;
    };
    // SAFETY: `source` is valid for `capacity` writable bytes, of which recvfrom initialised
    // `min(capacity, *len)`.
    let Some(source_view) = (unsafe { out_buffer(source.cast(), capacity as usize) }) else {
        return received;
    };
    let saved = errno();
    let _ = run("recvfrom", || {
        translate_source(fd, source_view, len_view, capacity);
        Outcome::Handled(())
    });
    set_errno(saved);
    received
}

unsafe extern "C" fn recvmsg_shim(fd: c_int, message: *mut msghdr, flags: c_int) -> ssize_t {
    // SAFETY: libc's recvmsg with the caller's arguments.
    let original = || unsafe { (RECVMSG.original())(fd, message, flags) };
    if message.is_null() || !is_managed(fd) {
        return original();
    }
    // SAFETY: recvmsg(2) requires a valid, writable `msghdr`.
    let capacity = unsafe { (*message).msg_namelen };
    let received = original();
    if received < 0 {
        return received;
    }
    let Some(_guard) = DetourGuard::enter() else {
        return received;
    };
    // SAFETY: as above.
    let Some(message_view) = (unsafe { message.as_mut() }) else {
        return received;
    };
    if message_view.msg_name.is_null() {
        return received;
    }
    // SAFETY: `msg_name` is valid for `capacity` writable bytes (the size the caller gave).
    let Some(source_view) = (unsafe { out_buffer(message_view.msg_name, capacity as usize) })
    else {
        return received;
    };
    let saved = errno();
    let _ = run("recvmsg", || {
        translate_source(fd, source_view, &mut message_view.msg_namelen, capacity);
        Outcome::Handled(())
    });
    set_errno(saved);
    received
}

/// How many of a `recvmmsg`'s messages get their source translated (their address buffers' sizes
/// are kept on the stack before the call overwrites them): more than any batch of datagrams a
/// program reads from one relay.
const TRACKED_MESSAGES: usize = 64;

unsafe extern "C" fn recvmmsg_shim(
    fd: c_int,
    messages: *mut mmsghdr,
    count: c_uint,
    flags: c_int,
    timeout: *mut libc::timespec,
) -> c_int {
    // SAFETY: libc's recvmmsg with the caller's arguments.
    let original = || unsafe { (RECVMMSG.original())(fd, messages, count, flags, timeout) };
    if messages.is_null() || !is_managed(fd) {
        return original();
    }
    let tracked = (count as usize).min(TRACKED_MESSAGES);
    let mut capacities = [0 as socklen_t; TRACKED_MESSAGES];
    for (index, capacity) in capacities.iter_mut().enumerate().take(tracked) {
        // SAFETY: recvmmsg(2) requires `messages` to point to `count` valid, writable `mmsghdr`s.
        *capacity = unsafe { (*messages.add(index)).msg_hdr.msg_namelen };
    }
    let received = original();
    if received <= 0 {
        return received;
    }
    let Some(_guard) = DetourGuard::enter() else {
        return received;
    };
    let saved = errno();
    for (index, &capacity) in capacities
        .iter()
        .enumerate()
        .take(tracked.min(received as usize))
    {
        // SAFETY: as above; recvmmsg filled this message.
        let Some(entry) = (unsafe { messages.add(index).as_mut() }) else {
            break;
        };
        let header = &mut entry.msg_hdr;
        if header.msg_name.is_null() {
            continue;
        }
        // SAFETY: `msg_name` is valid for `capacity` writable bytes (the size the caller gave).
        let Some(source_view) = (unsafe { out_buffer(header.msg_name, capacity as usize) }) else {
            continue;
        };
        let _ = run("recvmmsg", || {
            translate_source(fd, source_view, &mut header.msg_namelen, capacity);
            Outcome::Handled(())
        });
    }
    set_errno(saved);
    received
}

/// Replaces a relay's address in a received datagram's source by the remote address it stands for.
fn translate_source(
    fd: c_int,
    source: &mut [MaybeUninit<u8>],
    len: &mut socklen_t,
    capacity: socklen_t,
) {
    let filled = (*len).min(capacity) as usize;
    let bytes: Vec<u8> = source[..filled.min(source.len())]
        .iter()
        // SAFETY: the kernel initialised the first `min(capacity, *len)` bytes.
        .map(|byte| unsafe { byte.assume_init() })
        .collect();
    if let Some((remote, domain)) = net::remote_source(fd, &bytes) {
        let remote = net::sockaddr_bytes(remote, domain.into()).unwrap_or_default();
        write_address(source, len, &remote);
    }
}

// ---------------------------------------------------------------------------------------------------
// Incoming: bind, listen, accept, accept4

type BindFn = unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int;
type ListenFn = unsafe extern "C" fn(c_int, c_int) -> c_int;
type AcceptFn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int;
type Accept4Fn = unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int;

hooks! {
    // SAFETY: the types above are glibc's prototypes of these functions.
    unsafe {
        static BIND: BindFn = c"bind";
        static LISTEN: ListenFn = c"listen";
        static ACCEPT: AcceptFn = c"accept";
        static ACCEPT4: Accept4Fn = c"accept4";
    }
}

/// Installs the hooks of incoming traffic (`bind`, `listen`, `accept`, `accept4`).
///
/// # Safety
///
/// From the library constructor only (see [`Installer::install`]).
pub(crate) unsafe fn install_incoming(installer: &mut Installer) {
    // SAFETY: as in `install`.
    unsafe {
        installer.hook(&BIND, bind_shim, &[]);
        installer.hook(&LISTEN, listen_shim, &[]);
        installer.hook(&ACCEPT, accept_shim, &[]);
        installer.hook(&ACCEPT4, accept4_shim, &[]);
    }
}

unsafe extern "C" fn bind_shim(fd: c_int, address: *const sockaddr, len: socklen_t) -> c_int {
    let original = |address: *const sockaddr, len: socklen_t| {
        // SAFETY: libc's bind with the caller's fd and the caller's address or one of the layer's that
        // outlives the call.
        unsafe { (BIND.original())(fd, address, len) }
    };
    let Some(_guard) = DetourGuard::enter() else {
        return original(address, len);
    };
    // SAFETY: bind(2) requires `address` to be valid for `len` readable bytes.
    let Some(address_view) = (unsafe { in_buffer(address.cast(), len as usize) }) else {
        return original(address, len);
    };
    let saved = errno();
    run("bind", || {
        net::incoming::bind(fd, address_view, |local| {
            original(local.as_ptr().cast(), local.len() as socklen_t)
        })
    })
    .finish(saved, || original(address, len), -1)
}

unsafe extern "C" fn listen_shim(fd: c_int, backlog: c_int) -> c_int {
    // SAFETY: libc's listen with the caller's arguments (no pointers).
    let result = unsafe { (LISTEN.original())(fd, backlog) };
    if result != 0 || !matches!(FDS.get(fd), Some(FdEntry::Socket(_))) {
        return result;
    }
    let Some(_guard) = DetourGuard::enter() else {
        return result;
    };
    let saved = errno();
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
    // SAFETY: libc's getsockname into a `sockaddr_storage` whose size `len` holds.
    let named = unsafe { (GETSOCKNAME.original())(fd, storage.as_mut_ptr().cast(), &mut len) };
    if named != 0 {
        return result;
    }
    // SAFETY: getsockname initialised the first `len` bytes (at most the storage's size).
    let bound = unsafe {
        std::slice::from_raw_parts(
            storage.as_ptr().cast::<u8>(),
            (len as usize).min(std::mem::size_of::<libc::sockaddr_storage>()),
        )
    };
    if !is_managed(fd) {
        let _ = run("listen", || {
            net::local_listening(fd, bound);
            Outcome::Handled(())
        });
        set_errno(saved);
        return result;
    }
    run("listen", || net::incoming::listening(fd, bound)).finish(saved, || result, -1)
}

unsafe extern "C" fn accept_shim(fd: c_int, address: *mut sockaddr, len: *mut socklen_t) -> c_int {
    let original = |address: *mut sockaddr, len: *mut socklen_t| {
        // SAFETY: libc's accept with the caller's fd and the caller's or the layer's address buffer.
        unsafe { (ACCEPT.original())(fd, address, len) }
    };
    if !is_managed(fd) {
        return original(address, len);
    }
    // SAFETY: the caller's arguments under accept(2)'s contract.
    unsafe { accept_common(fd, address, len, original) }
}

unsafe extern "C" fn accept4_shim(
    fd: c_int,
    address: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let original = |address: *mut sockaddr, len: *mut socklen_t| {
        // SAFETY: libc's accept4 with the caller's fd and flags and the caller's or the layer's
        // address buffer.
        unsafe { (ACCEPT4.original())(fd, address, len, flags) }
    };
    if !is_managed(fd) {
        return original(address, len);
    }
    // SAFETY: the caller's arguments under accept4(2)'s contract.
    unsafe { accept_common(fd, address, len, original) }
}

/// Accepts into the layer's own buffer (the caller may pass none), then reports the remote peer of a
/// delivered connection, or the real one, in the caller's buffer.
///
/// # Safety
///
/// accept(2)'s contract: `address` is null, or `len` points to the writable size of its buffer.
unsafe fn accept_common(
    fd: c_int,
    address: *mut sockaddr,
    len: *mut socklen_t,
    original: impl Fn(*mut sockaddr, *mut socklen_t) -> c_int,
) -> c_int {
    let Some(_guard) = DetourGuard::enter() else {
        return original(address, len);
    };
    if !net::incoming::is_listener(fd) {
        return original(address, len);
    }
    let mut storage = MaybeUninit::<libc::sockaddr_storage>::zeroed();
    let mut storage_len = std::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
    let new_fd = original(storage.as_mut_ptr().cast(), &mut storage_len);
    if new_fd < 0 {
        return new_fd;
    }
    let saved = errno();
    // SAFETY: accept initialised the first `storage_len` bytes (at most the storage's size).
    let peer = unsafe {
        std::slice::from_raw_parts(
            storage.as_ptr().cast::<u8>(),
            (storage_len as usize).min(std::mem::size_of::<libc::sockaddr_storage>()),
        )
    };
    let reported = match run("accept", || net::incoming::accepted(fd, new_fd, peer)) {
        Outcome::Handled(bytes) => bytes,
        Outcome::Bypass(_) | Outcome::Fail(_) => peer.to_vec(),
    };
    if !address.is_null() {
        // SAFETY: with a non-null `address`, `len` points to the writable size of its buffer.
        if let Some(len_view) = unsafe { len.as_mut() } {
            // SAFETY: `address` is valid for `*len` writable bytes.
            if let Some(buffer) = unsafe { out_buffer(address.cast(), *len_view as usize) } {
                copy_out(buffer, &reported);
                *len_view = reported.len() as socklen_t;
            }
        }
    }
    set_errno(saved);
    new_fd
}
