//! The sandbox pod's DNS server: a small authoritative server for the pod's own names, over UDP
//! and TCP (RFC 1035, with the two-byte length prefix on TCP). It answers `A` and `AAAA` queries
//! for the names of its [`DnsZone`], an empty answer (NODATA) for other types of a known name, and
//! NXDOMAIN for every other name; it never forwards. The `mirrord` binary runs it as the hidden
//! `mirrord sandbox serve dns` subcommand inside the sandbox's network namespace.

use std::{
    collections::BTreeMap,
    io::{self, Read, Write},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::Arc,
    thread,
    time::Duration,
};

/// How long an idle TCP connection stays open.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Time to live of every answer, in seconds.
const TTL_SECONDS: u32 = 5;

/// The largest reply sent over UDP to a client that did not announce a bigger buffer.
const UDP_REPLY_LIMIT: usize = 512;

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;

const RCODE_FORMERR: u8 = 1;
const RCODE_NXDOMAIN: u8 = 3;
const RCODE_NOTIMP: u8 = 4;

/// The names a DNS server answers: lowercase, without the trailing dot, each with its addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsZone {
    records: BTreeMap<String, Vec<IpAddr>>,
}

impl DnsZone {
    /// An empty zone (every name is NXDOMAIN).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `address` to the records of `name` (case and a trailing dot do not matter).
    pub fn insert(&mut self, name: &str, address: IpAddr) {
        self.records
            .entry(normalise(name))
            .or_default()
            .push(address);
    }

    fn lookup(&self, name: &str) -> Option<&[IpAddr]> {
        self.records.get(name).map(Vec::as_slice)
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The sandbox's DNS server, bound on UDP and TCP but not yet serving.
#[derive(Debug)]
pub struct DnsService {
    udp: UdpSocket,
    tcp: TcpListener,
    zone: Arc<DnsZone>,
}

impl DnsService {
    /// Binds `address` on UDP, and on TCP at the port UDP got (so port 0 picks one for both).
    ///
    /// With port 0 the kernel picks a free UDP port, and that port may be taken for TCP by
    /// another socket; a few fresh picks are tried before the error is returned.
    pub fn bind(address: SocketAddr, zone: DnsZone) -> io::Result<Self> {
        const PICKS_FOR_PORT_ZERO: usize = 16;
        let attempts = if address.port() == 0 {
            PICKS_FOR_PORT_ZERO
        } else {
            1
        };
        let mut last_error = None;
        for _ in 0..attempts {
            let udp = UdpSocket::bind(address)?;
            match TcpListener::bind(udp.local_addr()?) {
                Ok(tcp) => {
                    return Ok(Self {
                        udp,
                        tcp,
                        zone: Arc::new(zone),
                    });
                }
                Err(error) if error.kind() == io::ErrorKind::AddrInUse => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrInUse)))
    }

    /// The bound address (the same for UDP and TCP).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Answers queries until a socket fails for good: UDP on this thread, TCP on another (one
    /// thread per connection).
    pub fn run(self) -> io::Result<()> {
        let Self { udp, tcp, zone } = self;
        let tcp_zone = Arc::clone(&zone);
        thread::spawn(move || {
            for stream in tcp.incoming() {
                // A failed accept only loses that connection.
                let Ok(stream) = stream else { continue };
                let zone = Arc::clone(&tcp_zone);
                thread::spawn(move || drop(serve_tcp_connection(stream, &zone)));
            }
        });
        let mut query = vec![0; 65_535];
        loop {
            let (length, peer) = match udp.recv_from(&mut query) {
                Ok(received) => received,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            };
            if let Some(reply) = answer(&zone, &query[..length], UDP_REPLY_LIMIT) {
                // A client that went away must not stop the server.
                let _ = udp.send_to(&reply, peer);
            }
        }
    }
}

fn serve_tcp_connection(mut stream: TcpStream, zone: &DnsZone) -> io::Result<()> {
    stream.set_read_timeout(Some(TCP_IDLE_TIMEOUT))?;
    loop {
        let mut length = [0; 2];
        stream.read_exact(&mut length)?;
        let mut query = vec![0; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut query)?;
        let Some(reply) = answer(zone, &query, usize::from(u16::MAX)) else {
            return Ok(());
        };
        let mut framed = Vec::with_capacity(reply.len() + 2);
        framed.extend_from_slice(&(reply.len() as u16).to_be_bytes());
        framed.extend_from_slice(&reply);
        stream.write_all(&framed)?;
    }
}

/// The question of a query: the name as sent (for the reply), lowercased (for the lookup), its
/// type and class, and where the question ends.
struct Question<'a> {
    wire: &'a [u8],
    name: String,
    kind: u16,
    class: u16,
}

/// Parses the single question that starts at byte 12 of `query`.
fn parse_question(query: &[u8]) -> Option<Question<'_>> {
    let mut offset = 12;
    let mut labels = Vec::new();
    loop {
        let length = usize::from(*query.get(offset)?);
        offset += 1;
        if length == 0 {
            break;
        }
        // Compression pointers (0xc0) and the reserved label types have no place in a question.
        if length > 63 {
            return None;
        }
        let label = query.get(offset..offset + length)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        offset += length;
    }
    let fixed = query.get(offset..offset + 4)?;
    Some(Question {
        wire: &query[12..offset + 4],
        name: labels.join("."),
        kind: u16::from_be_bytes([fixed[0], fixed[1]]),
        class: u16::from_be_bytes([fixed[2], fixed[3]]),
    })
}

/// The reply to `query`, at most `limit` bytes long (truncated with the TC bit beyond it), or
/// `None` when `query` is not a query at all (too short, or itself a response).
pub(crate) fn answer(zone: &DnsZone, query: &[u8], limit: usize) -> Option<Vec<u8>> {
    let header = query.get(..12)?;
    let (id, flags) = ([header[0], header[1]], header[2]);
    if flags & 0x80 != 0 {
        return None;
    }
    let opcode = (flags >> 3) & 0x0f;
    let recursion_desired = flags & 0x01;
    let question_count = u16::from_be_bytes([header[4], header[5]]);
    let reply_head = |rcode: u8, authoritative: bool, question: &[u8], answers: u16| {
        let mut reply = Vec::with_capacity(64);
        reply.extend_from_slice(&id);
        // QR, the opcode, AA, RD copied; RA clear: this server does not recurse.
        reply.push(0x80 | (opcode << 3) | if authoritative { 0x04 } else { 0 } | recursion_desired);
        reply.push(rcode);
        let questions = u16::from(!question.is_empty());
        for count in [questions, answers, 0, 0] {
            reply.extend_from_slice(&count.to_be_bytes());
        }
        reply.extend_from_slice(question);
        reply
    };
    if opcode != 0 {
        return Some(reply_head(RCODE_NOTIMP, false, &[], 0));
    }
    let question = match (question_count, parse_question(query)) {
        (1, Some(question)) => question,
        _ => return Some(reply_head(RCODE_FORMERR, false, &[], 0)),
    };
    let Some(addresses) = zone.lookup(&question.name) else {
        return Some(reply_head(RCODE_NXDOMAIN, true, question.wire, 0));
    };
    let matching: Vec<&IpAddr> = addresses
        .iter()
        .filter(|address| {
            question.class == CLASS_IN
                && match address {
                    IpAddr::V4(_) => question.kind == TYPE_A,
                    IpAddr::V6(_) => question.kind == TYPE_AAAA,
                }
        })
        .collect();
    let mut reply = reply_head(0, true, question.wire, matching.len() as u16);
    for address in matching {
        // The owner name points back at the question (offset 12).
        reply.extend_from_slice(&[0xc0, 12]);
        let (kind, data): (u16, Vec<u8>) = match address {
            IpAddr::V4(v4) => (TYPE_A, v4.octets().to_vec()),
            IpAddr::V6(v6) => (TYPE_AAAA, v6.octets().to_vec()),
        };
        reply.extend_from_slice(&kind.to_be_bytes());
        reply.extend_from_slice(&CLASS_IN.to_be_bytes());
        reply.extend_from_slice(&TTL_SECONDS.to_be_bytes());
        reply.extend_from_slice(&(data.len() as u16).to_be_bytes());
        reply.extend_from_slice(&data);
    }
    if reply.len() > limit {
        // Only the question fits: say so with TC, so the client retries over TCP.
        let mut truncated = reply_head(0, true, question.wire, 0);
        truncated[2] |= 0x02;
        return Some(truncated);
    }
    Some(reply)
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn zone() -> DnsZone {
        let mut zone = DnsZone::new();
        zone.insert("db.sandbox.svc", IpAddr::V4(Ipv4Addr::new(10, 242, 3, 2)));
        zone.insert(
            "Dual.Sandbox.Svc.",
            IpAddr::V4(Ipv4Addr::new(10, 241, 3, 2)),
        );
        zone.insert("dual.sandbox.svc", IpAddr::V6(Ipv6Addr::LOCALHOST));
        zone
    }

    fn query(id: u16, name: &str, kind: u16) -> Vec<u8> {
        let mut message = id.to_be_bytes().to_vec();
        message.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            message.push(label.len() as u8);
            message.extend_from_slice(label.as_bytes());
        }
        message.push(0);
        message.extend_from_slice(&kind.to_be_bytes());
        message.extend_from_slice(&CLASS_IN.to_be_bytes());
        message
    }

    /// The rcode and the answers' (type, data) of `reply`, checking the header on the way.
    fn decode(id: u16, sent: &[u8], reply: &[u8]) -> (u8, Vec<(u16, Vec<u8>)>) {
        assert_eq!(reply[..2], id.to_be_bytes());
        assert_eq!(reply[2] & 0x80, 0x80, "not a response");
        let question_end = sent.len();
        assert_eq!(reply[12..question_end], sent[12..], "question not echoed");
        let count = u16::from_be_bytes([reply[6], reply[7]]);
        let mut offset = question_end;
        let mut answers = Vec::new();
        for _ in 0..count {
            assert_eq!(reply[offset..offset + 2], [0xc0, 12]);
            let kind = u16::from_be_bytes([reply[offset + 2], reply[offset + 3]]);
            let length = usize::from(u16::from_be_bytes([reply[offset + 10], reply[offset + 11]]));
            answers.push((kind, reply[offset + 12..offset + 12 + length].to_vec()));
            offset += 12 + length;
        }
        assert_eq!(offset, reply.len(), "trailing bytes");
        (reply[3] & 0x0f, answers)
    }

    #[test]
    fn known_names_get_their_a_and_aaaa_records_whatever_the_case() {
        let zone = zone();
        let sent = query(7, "DB.sandbox.svc", TYPE_A);
        let (rcode, answers) = decode(7, &sent, &answer(&zone, &sent, 512).unwrap());
        assert_eq!((rcode, answers), (0, vec![(TYPE_A, vec![10, 242, 3, 2])]));
        let sent = query(8, "dual.sandbox.svc", TYPE_AAAA);
        let (rcode, answers) = decode(8, &sent, &answer(&zone, &sent, 512).unwrap());
        assert_eq!(
            (rcode, answers),
            (0, vec![(TYPE_AAAA, Ipv6Addr::LOCALHOST.octets().to_vec())])
        );
    }

    #[test]
    fn other_types_of_known_names_are_empty_and_unknown_names_nxdomain() {
        let zone = zone();
        let sent = query(9, "db.sandbox.svc", TYPE_AAAA);
        assert_eq!(
            decode(9, &sent, &answer(&zone, &sent, 512).unwrap()),
            (0, vec![])
        );
        let sent = query(10, "db.sandbox.svc", 15);
        assert_eq!(
            decode(10, &sent, &answer(&zone, &sent, 512).unwrap()),
            (0, vec![])
        );
        for name in ["nope.sandbox.svc", "example.com", "sandbox.svc"] {
            let sent = query(11, name, TYPE_A);
            let (rcode, answers) = decode(11, &sent, &answer(&zone, &sent, 512).unwrap());
            assert_eq!((rcode, answers.len()), (RCODE_NXDOMAIN, 0), "{name}");
        }
    }

    #[test]
    fn malformed_queries_get_formerr_and_responses_get_nothing() {
        let zone = zone();
        let mut sent = query(12, "db.sandbox.svc", TYPE_A);
        sent.truncate(sent.len() - 2);
        let reply = answer(&zone, &sent, 512).unwrap();
        assert_eq!((reply[3] & 0x0f, reply.len()), (RCODE_FORMERR, 12));
        let mut response = query(13, "db.sandbox.svc", TYPE_A);
        response[2] |= 0x80;
        assert_eq!(answer(&zone, &response, 512), None);
        assert_eq!(answer(&zone, &[0; 5], 512), None);
        let mut update = query(14, "db.sandbox.svc", TYPE_A);
        update[2] = 5 << 3;
        assert_eq!(answer(&zone, &update, 512).unwrap()[3] & 0x0f, RCODE_NOTIMP);
    }

    #[test]
    fn replies_over_the_limit_are_truncated() {
        let mut zone = DnsZone::new();
        for last in 0..40 {
            zone.insert(
                "many.svc",
                IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last)),
            );
        }
        let sent = query(15, "many.svc", TYPE_AAAA);
        let reply = answer(&zone, &sent, 512).unwrap();
        assert_eq!(reply[2] & 0x02, 0x02, "TC not set");
        assert_eq!(decode(15, &sent, &reply), (0, vec![]));
        let (_, answers) = decode(15, &sent, &answer(&zone, &sent, 65_535).unwrap());
        assert_eq!(answers.len(), 40);
    }

    #[test]
    fn serves_over_udp_and_tcp() {
        let service = DnsService::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), zone()).unwrap();
        let address = service.local_addr().unwrap();
        thread::spawn(move || service.run());
        assert_eq!(
            crate::probe::resolve_a(address, "db.sandbox.svc", Duration::from_secs(5)).unwrap(),
            [Ipv4Addr::new(10, 242, 3, 2)]
        );
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        for (id, name) in [(21, "db.sandbox.svc"), (22, "missing.sandbox.svc")] {
            let sent = query(id, name, TYPE_A);
            stream
                .write_all(&(sent.len() as u16).to_be_bytes())
                .unwrap();
            stream.write_all(&sent).unwrap();
            let mut length = [0; 2];
            stream.read_exact(&mut length).unwrap();
            let mut reply = vec![0; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut reply).unwrap();
            let (rcode, answers) = decode(id, &sent, &reply);
            match name {
                "db.sandbox.svc" => assert_eq!((rcode, answers.len()), (0, 1)),
                _ => assert_eq!(rcode, RCODE_NXDOMAIN),
            }
        }
    }
}
