//! What the agent's two netlink users (`nft.rs`, the redirect rules; `flush.rs`, the target's
//! sockets) share: sending a buffer, receiving one, and splitting what was received into messages.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// `struct nlmsghdr`.
pub(crate) const HEADER_LEN: usize = 16;
/// An error, or with code 0 an acknowledgement.
pub(crate) const NLMSG_ERROR: u16 = 0x2;
/// The end of a dump.
pub(crate) const NLMSG_DONE: u16 = 0x3;

/// One received netlink message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Message<'a> {
    /// `nlmsg_type`.
    pub(crate) kind: u16,
    /// `nlmsg_seq`.
    pub(crate) sequence: u32,
    /// What follows the header.
    pub(crate) payload: &'a [u8],
}

impl Message<'_> {
    /// For an `NLMSG_ERROR` message: the error (`Ok` for an acknowledgement).
    pub(crate) fn error(&self) -> Option<io::Result<()>> {
        if self.kind != NLMSG_ERROR {
            return None;
        }
        let code = self.payload.get(..4).map_or(-libc::EPROTO, |bytes| {
            i32::from_ne_bytes(bytes.try_into().expect("4 bytes"))
        });
        Some(if code == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(-code))
        })
    }
}

/// The messages in one received buffer; a truncated one is an error.
pub(crate) fn messages(received: &[u8]) -> io::Result<Vec<Message<'_>>> {
    let mut messages = Vec::new();
    let mut offset = 0;
    while offset + HEADER_LEN <= received.len() {
        let header = &received[offset..];
        let length = u32::from_ne_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
        if length < HEADER_LEN || length > header.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a truncated netlink message",
            ));
        }
        messages.push(Message {
            kind: u16::from_ne_bytes(header[4..6].try_into().expect("2 bytes")),
            sequence: u32::from_ne_bytes(header[8..12].try_into().expect("4 bytes")),
            payload: &header[HEADER_LEN..length],
        });
        offset += (length + 3) & !3;
    }
    Ok(messages)
}

/// Appends one message: the header, `payload` and padding to four bytes.
pub(crate) fn push_message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    sequence: u32,
    payload: &[u8],
) {
    out.extend_from_slice(&((HEADER_LEN + payload.len()) as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&sequence.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(payload);
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Sends `bytes` (one or more whole messages) on `socket`.
pub(crate) fn send(socket: &OwnedFd, bytes: &[u8]) -> io::Result<()> {
    // SAFETY: the socket is open and `bytes` is a valid buffer of `bytes.len()` bytes.
    let sent = unsafe { libc::send(socket.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Receives into `buffer`; how many bytes arrived.
pub(crate) fn receive(socket: &OwnedFd, buffer: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the buffer is valid for writes of `buffer.len()` bytes.
    let received = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            0,
        )
    };
    if received < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(received as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: u16, sequence: u32, payload: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        push_message(&mut bytes, kind, 0, sequence, payload);
        bytes
    }

    #[test]
    fn splits_messages_and_reads_errors() {
        let mut received = message(NLMSG_ERROR, 7, &(-libc::EPERM).to_ne_bytes());
        received.extend(message(NLMSG_ERROR, 8, &0i32.to_ne_bytes()));
        received.extend(message(NLMSG_DONE, 9, &[1, 2, 3]));
        let parsed = messages(&received).unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            parsed[0].error().unwrap().unwrap_err().raw_os_error(),
            Some(libc::EPERM)
        );
        assert!(parsed[1].error().unwrap().is_ok());
        assert_eq!((parsed[2].kind, parsed[2].sequence), (NLMSG_DONE, 9));
        assert_eq!(parsed[2].payload, &[1, 2, 3]);
        assert!(parsed[2].error().is_none());
        assert!(messages(&received[..38]).is_err(), "truncated");
    }
}
