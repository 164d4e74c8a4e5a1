//! `agent.flush_connections`: when a port starts being stolen, the connections the target's service
//! already has on it would never see the redirect (it applies to new connections only). They are
//! closed instead — `SOCK_DESTROY` through the `NETLINK_SOCK_DIAG` socket of the target's network
//! namespace, which resets them as `ss -K` does — so that their clients reconnect, into the redirect.
//!
//! The same socket answers whether anything of the target listens on a port (a subscription to a
//! port nobody serves is allowed, but the user is warned).
//!
//! Only the target's side of established connections to the port is destroyed (local port = the
//! port); listening sockets, and the agent's own connections to the target's service (whose local
//! port is ephemeral), are left alone.

use std::io;
use std::os::fd::OwnedFd;

use super::netlink::{self, NLMSG_DONE};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const SOCK_DESTROY: u16 = 21;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
/// `struct inet_diag_sockid`: ports, addresses, interface, cookie.
const SOCKID_LEN: usize = 48;
/// `struct inet_diag_req_v2`.
const REQUEST_LEN: usize = 8 + SOCKID_LEN;
/// `struct inet_diag_msg` up to and including the sockid (what we read of it).
const MESSAGE_HEAD_LEN: usize = 4 + SOCKID_LEN;
const TCP_ESTABLISHED: u32 = 1;
const TCP_SYN_RECV: u32 = 3;
const TCP_CLOSE_WAIT: u32 = 8;
const TCP_LISTEN: u32 = 10;

/// Destroys the target's established TCP connections whose local port is `port`, on `socket` (a
/// `NETLINK_SOCK_DIAG` socket made in the target's network namespace). Returns how many.
pub(crate) fn destroy_connections(socket: &OwnedFd, port: u16) -> io::Result<usize> {
    let mut destroyed = 0;
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        let sockets = established_on(socket, family, port)?;
        for id in sockets {
            match destroy(socket, family, &id) {
                Ok(()) => destroyed += 1,
                // Gone meanwhile.
                Err(error) if error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(error) => return Err(error),
            }
        }
    }
    Ok(destroyed)
}

/// Whether some TCP socket of the target listens on `port`.
pub(crate) fn listens_on(socket: &OwnedFd, port: u16) -> io::Result<bool> {
    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
        if !sockets_on(socket, family, port, 1 << TCP_LISTEN)?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The sockids of `family` TCP sockets in an established-like state with local port `port`.
fn established_on(socket: &OwnedFd, family: u8, port: u16) -> io::Result<Vec<[u8; SOCKID_LEN]>> {
    let states = (1 << TCP_ESTABLISHED) | (1 << TCP_SYN_RECV) | (1 << TCP_CLOSE_WAIT);
    sockets_on(socket, family, port, states)
}

/// The sockids of `family` TCP sockets in `states` (a bit mask) with local port `port`.
fn sockets_on(
    socket: &OwnedFd,
    family: u8,
    port: u16,
    states: u32,
) -> io::Result<Vec<[u8; SOCKID_LEN]>> {
    let mut request = diag_request(family, states);
    // The kernel filters a dump by the sockid's ports only through bytecode; we filter below.
    request[8..10].copy_from_slice(&port.to_be_bytes());
    send(
        socket,
        SOCK_DIAG_BY_FAMILY,
        NLM_F_REQUEST | NLM_F_DUMP,
        1,
        &request,
    )?;
    let mut found = Vec::new();
    let mut buffer = vec![0u8; 32 * 1024];
    loop {
        let received = netlink::receive(socket, &mut buffer)?;
        for message in netlink::messages(&buffer[..received])? {
            if let Some(result) = message.error() {
                result?;
            } else if message.kind == NLMSG_DONE {
                return Ok(found);
            } else if message.kind == SOCK_DIAG_BY_FAMILY
                && message.payload.len() >= MESSAGE_HEAD_LEN
            {
                let id: [u8; SOCKID_LEN] = message.payload[4..MESSAGE_HEAD_LEN]
                    .try_into()
                    .expect("SOCKID_LEN bytes");
                if u16::from_be_bytes([id[0], id[1]]) == port {
                    found.push(id);
                }
            }
        }
    }
}

fn destroy(socket: &OwnedFd, family: u8, id: &[u8; SOCKID_LEN]) -> io::Result<()> {
    let mut request = diag_request(family, u32::MAX);
    request[8..].copy_from_slice(id);
    send(socket, SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, 2, &request)?;
    let mut buffer = vec![0u8; 4096];
    let received = netlink::receive(socket, &mut buffer)?;
    match netlink::messages(&buffer[..received])?.first() {
        Some(message) => message.error().unwrap_or(Ok(())),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a short sock_diag answer",
        )),
    }
}

/// `struct inet_diag_req_v2` for TCP sockets of `family` in `states`, with an empty sockid.
fn diag_request(family: u8, states: u32) -> [u8; REQUEST_LEN] {
    let mut request = [0u8; REQUEST_LEN];
    request[0] = family;
    request[1] = libc::IPPROTO_TCP as u8;
    request[4..8].copy_from_slice(&states.to_ne_bytes());
    request
}

/// Sends one message of `kind` with `payload`.
fn send(socket: &OwnedFd, kind: u16, flags: u16, sequence: u32, payload: &[u8]) -> io::Result<()> {
    let mut message = Vec::new();
    netlink::push_message(&mut message, kind, flags, sequence, payload);
    netlink::send(socket, &message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_have_the_kernel_layout() {
        let request = diag_request(libc::AF_INET6 as u8, 1 << TCP_ESTABLISHED);
        assert_eq!(request.len(), 56, "sizeof(struct inet_diag_req_v2)");
        assert_eq!(request[0], libc::AF_INET6 as u8);
        assert_eq!(request[1], libc::IPPROTO_TCP as u8);
        assert_eq!(u32::from_ne_bytes(request[4..8].try_into().unwrap()), 2);
    }
}
