//! Small clients that check a sandbox's services answer: HTTP, TCP echo, UDP echo and a DNS `A`
//! lookup. `up` runs them (from the host, and on a thread that has joined the sandbox's network
//! namespace) before it reports a sandbox as ready.

use std::{
    io::{self, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The service could not be reached or stopped answering.
    #[error("{what} failed")]
    Io {
        /// What was attempted, e.g. "connect to 10.242.1.2:7".
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The service answered, but not as expected.
    #[error("{what}: {detail}")]
    Unexpected {
        /// Which check.
        what: String,
        /// What was wrong with the answer.
        detail: String,
    },
}

fn io_error(what: impl Into<String>) -> impl FnOnce(io::Error) -> ProbeError {
    let what = what.into();
    move |source| ProbeError::Io { what, source }
}

fn unexpected(what: impl Into<String>, detail: impl Into<String>) -> ProbeError {
    ProbeError::Unexpected {
        what: what.into(),
        detail: detail.into(),
    }
}

/// An HTTP response, read to the end of the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code.
    pub status: u16,
    /// Header names (lowercased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl HttpReply {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Sends `GET path` with `connection: close` to `address` and reads the reply.
pub fn http_get(
    address: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<HttpReply, ProbeError> {
    let what = format!("GET http://{address}{path}");
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(io_error(format!("{what}: connect")))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(io_error(what.clone()))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {address}\r\nuser-agent: mirrord-sandbox-probe\r\nconnection: close\r\n\r\n"
    )
    .map_err(io_error(format!("{what}: send")))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(io_error(format!("{what}: receive")))?;
    let text = String::from_utf8(raw).map_err(|_| unexpected(&what, "the reply is not UTF-8"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| unexpected(&what, "the reply has no end of headers"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| unexpected(&what, "the reply has no status line"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok(HttpReply {
        status,
        headers,
        body: body.to_owned(),
    })
}

/// Checks that the TCP echo service at `address` sends back what it is sent.
pub fn tcp_echo(address: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let what = format!("tcp echo at {address}");
    let payload = probe_payload();
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(io_error(format!("{what}: connect")))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(io_error(what.clone()))?;
    stream
        .write_all(&payload)
        .map_err(io_error(format!("{what}: send")))?;
    let mut echoed = vec![0; payload.len()];
    stream
        .read_exact(&mut echoed)
        .map_err(io_error(format!("{what}: receive")))?;
    if echoed == payload {
        Ok(())
    } else {
        Err(unexpected(what, "the echo differs from what was sent"))
    }
}

/// Checks that the UDP echo service at `address` sends a datagram back.
pub fn udp_echo(address: SocketAddr, timeout: Duration) -> Result<(), ProbeError> {
    let what = format!("udp echo at {address}");
    let payload = probe_payload();
    let socket = connected_udp_socket(address, timeout).map_err(io_error(what.clone()))?;
    socket
        .send(&payload)
        .map_err(io_error(format!("{what}: send")))?;
    let mut echoed = vec![0; 1500];
    let length = socket
        .recv(&mut echoed)
        .map_err(io_error(format!("{what}: receive")))?;
    if echoed[..length] == payload {
        Ok(())
    } else {
        Err(unexpected(what, "the echo differs from what was sent"))
    }
}

/// Asks the DNS server at `server` for the `A` records of `name`.
pub fn resolve_a(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<Ipv4Addr>, ProbeError> {
    let what = format!("dns query for {name} at {server}");
    let id = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|time| time.subsec_nanos())
        .unwrap_or_default()
        ^ std::process::id()) as u16;
    let query =
        dns_query(id, name).ok_or_else(|| unexpected(&what, "the name is not a valid DNS name"))?;
    let socket = connected_udp_socket(server, timeout).map_err(io_error(what.clone()))?;
    socket
        .send(&query)
        .map_err(io_error(format!("{what}: send")))?;
    let mut reply = vec![0; 4096];
    let length = socket
        .recv(&mut reply)
        .map_err(io_error(format!("{what}: receive")))?;
    parse_dns_reply(id, &reply[..length]).map_err(|detail| unexpected(what, detail))
}

fn connected_udp_socket(peer: SocketAddr, timeout: Duration) -> io::Result<UdpSocket> {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))?;
    socket.connect(peer)?;
    socket.set_read_timeout(Some(timeout))?;
    Ok(socket)
}

fn probe_payload() -> Vec<u8> {
    format!("mirrord sandbox probe {}\n", std::process::id()).into_bytes()
}

/// A recursive query for the `A` records of `name`, or `None` if `name` has an empty or
/// over-long label.
fn dns_query(id: u16, name: &str) -> Option<Vec<u8>> {
    let mut message = Vec::with_capacity(32 + name.len());
    message.extend_from_slice(&id.to_be_bytes());
    // Flags: recursion desired. One question, no other records.
    message.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        message.push(label.len() as u8);
        message.extend_from_slice(label.as_bytes());
    }
    message.push(0);
    // QTYPE A, QCLASS IN.
    message.extend_from_slice(&[0, 1, 0, 1]);
    Some(message)
}

/// The `A` addresses in a reply to the query with id `id`.
fn parse_dns_reply(id: u16, reply: &[u8]) -> Result<Vec<Ipv4Addr>, String> {
    let truncated = || "the reply is truncated".to_owned();
    let u16_at = |offset: usize| -> Result<u16, String> {
        reply
            .get(offset..offset + 2)
            .map(|bytes| u16::from_be_bytes([bytes[0], bytes[1]]))
            .ok_or_else(truncated)
    };
    if u16_at(0)? != id {
        return Err("the reply answers another query".to_owned());
    }
    let flags = u16_at(2)?;
    if flags & 0x8000 == 0 {
        return Err("the reply is not a response".to_owned());
    }
    match flags & 0x000f {
        0 => {}
        3 => return Err("the name does not exist (NXDOMAIN)".to_owned()),
        code => return Err(format!("the server answered with error code {code}")),
    }
    let questions = u16_at(4)?;
    let answers = u16_at(6)?;
    let mut offset = 12;
    for _ in 0..questions {
        offset = skip_name(reply, offset).ok_or_else(truncated)? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..answers {
        offset = skip_name(reply, offset).ok_or_else(truncated)?;
        let kind = u16_at(offset)?;
        let class = u16_at(offset + 2)?;
        let length = usize::from(u16_at(offset + 8)?);
        let data = reply
            .get(offset + 10..offset + 10 + length)
            .ok_or_else(truncated)?;
        if kind == 1 && class == 1 && length == 4 {
            addresses.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        offset += 10 + length;
    }
    Ok(addresses)
}

/// The offset just past the (possibly compressed) name at `offset`.
fn skip_name(message: &[u8], mut offset: usize) -> Option<usize> {
    loop {
        let length = *message.get(offset)?;
        match length {
            0 => return Some(offset + 1),
            _ if length & 0xc0 == 0xc0 => return Some(offset + 2),
            _ => offset += 1 + usize::from(length),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_encodes_labels() {
        let query = dns_query(0x1234, "db.sandbox.svc").unwrap();
        assert_eq!(&query[..4], &[0x12, 0x34, 0x01, 0x00]);
        assert_eq!(
            &query[12..],
            b"\x02db\x07sandbox\x03svc\x00\x00\x01\x00\x01"
        );
        assert_eq!(dns_query(1, "a..b"), None);
        assert_eq!(dns_query(1, &"x".repeat(64)), None);
    }

    #[test]
    fn reply_yields_a_records_and_errors() {
        let mut reply = dns_query(7, "db.sandbox.svc").unwrap();
        reply[2] = 0x81;
        reply[3] = 0x80;
        reply[7] = 2;
        // One A record (compressed name) and one CNAME-like record that is skipped.
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 10, 242, 3, 2]);
        reply.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 0, 0, 2, 0xc0, 12]);
        assert_eq!(
            parse_dns_reply(7, &reply),
            Ok(vec![Ipv4Addr::new(10, 242, 3, 2)])
        );
        assert_eq!(
            parse_dns_reply(8, &reply),
            Err("the reply answers another query".to_owned())
        );
        assert_eq!(
            parse_dns_reply(7, &reply[..reply.len() - 3]),
            Err("the reply is truncated".to_owned())
        );
        reply[3] = 0x83;
        assert_eq!(
            parse_dns_reply(7, &reply),
            Err("the name does not exist (NXDOMAIN)".to_owned())
        );
    }
}
