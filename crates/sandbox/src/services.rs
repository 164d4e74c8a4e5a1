//! The sandbox's services, in plain std (threads, no async runtime): the target's HTTP/1.1
//! server and the db namespace's TCP and UDP echo servers (the DNS server is in [`crate::dns`]).
//! The `mirrord` binary runs each as a hidden `mirrord sandbox serve …` subcommand, which first
//! calls [`start_own_session`].

use std::{
    io::{self, BufRead, BufReader, Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket},
    sync::Arc,
    thread,
    time::Duration,
};

/// Makes this process the leader of a new session, so that signals meant for the terminal or
/// the process group of whoever ran `up` (Ctrl-C) do not reach the service.
pub fn start_own_session() -> io::Result<()> {
    nix::unistd::setsid().map(drop).map_err(io::Error::from)
}

/// How long an idle keep-alive connection stays open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Limit on the request line plus headers of one HTTP request.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The header every response of the sandbox's HTTP service carries, `x-served-by: sandbox-NAME`.
pub const SERVED_BY_HEADER: &str = "x-served-by";

/// Binds `0.0.0.0:port` and answers every HTTP request with `sandbox NAME: METHOD PATH\n`.
/// Runs until the listener fails.
pub fn serve_http(port: u16, name: &str) -> io::Result<()> {
    HttpService::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), name)?.run()
}

/// Binds `0.0.0.0:port` and echoes every TCP connection's bytes back. Runs until the listener fails.
pub fn serve_tcp_echo(port: u16) -> io::Result<()> {
    TcpEchoService::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?.run()
}

/// Binds `0.0.0.0:port` and sends every UDP datagram back to its sender. Runs until the socket fails.
pub fn serve_udp_echo(port: u16) -> io::Result<()> {
    UdpEchoService::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))?.run()
}

/// The sandbox's HTTP/1.1 service (keep-alive capable), bound but not yet serving.
#[derive(Debug)]
pub struct HttpService {
    listener: TcpListener,
    name: Arc<str>,
}

impl HttpService {
    /// Binds `address`; responses name sandbox `name`.
    pub fn bind(address: SocketAddr, name: &str) -> io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(address)?,
            name: name.into(),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves connections, one thread each, until accepting fails for good.
    pub fn run(self) -> io::Result<()> {
        accept_loop(&self.listener, |stream| {
            let name = Arc::clone(&self.name);
            // A broken connection only ends that connection.
            move || drop(serve_http_connection(stream, &name))
        })
    }
}

/// The sandbox's TCP echo service, bound but not yet serving.
#[derive(Debug)]
pub struct TcpEchoService {
    listener: TcpListener,
}

impl TcpEchoService {
    /// Binds `address`.
    pub fn bind(address: SocketAddr) -> io::Result<Self> {
        Ok(Self {
            listener: TcpListener::bind(address)?,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Echoes connections, one thread each, until accepting fails for good.
    pub fn run(self) -> io::Result<()> {
        accept_loop(&self.listener, |stream| {
            move || {
                let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
                if let Ok(mut writer) = stream.try_clone() {
                    let mut reader = stream;
                    let _ = io::copy(&mut reader, &mut writer);
                }
            }
        })
    }
}

/// The sandbox's UDP echo service, bound but not yet serving.
#[derive(Debug)]
pub struct UdpEchoService {
    socket: UdpSocket,
}

impl UdpEchoService {
    /// Binds `address`.
    pub fn bind(address: SocketAddr) -> io::Result<Self> {
        Ok(Self {
            socket: UdpSocket::bind(address)?,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends every datagram back to its sender, until the socket fails.
    pub fn run(self) -> io::Result<()> {
        let mut buffer = vec![0; 65_536];
        loop {
            let (length, peer) = self.socket.recv_from(&mut buffer)?;
            // A peer that went away must not stop the service.
            let _ = self.socket.send_to(&buffer[..length], peer);
        }
    }
}

fn accept_loop<F, H>(listener: &TcpListener, mut handler: H) -> io::Result<()>
where
    H: FnMut(TcpStream) -> F,
    F: FnOnce() + Send + 'static,
{
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                thread::spawn(handler(stream));
            }
            // Per-connection failures (the peer reset before accept, no fds for a moment).
            Err(error) if is_transient(&error) => thread::sleep(Duration::from_millis(10)),
            Err(error) => return Err(error),
        }
    }
}

fn is_transient(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || error
        .raw_os_error()
        .is_some_and(|code| code == 23 || code == 24) // ENFILE, EMFILE
}

/// One parsed request head.
#[derive(Debug, PartialEq, Eq)]
struct RequestHead {
    method: String,
    target: String,
    /// `true` for HTTP/1.1 and later, where keep-alive is the default.
    http11: bool,
    headers: Vec<(String, String)>,
}

impl RequestHead {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.header(name).is_some_and(|value| {
            value
                .split(',')
                .any(|part| part.trim().eq_ignore_ascii_case(token))
        })
    }

    fn keep_alive(&self) -> bool {
        if self.http11 {
            !self.has_token("connection", "close")
        } else {
            self.has_token("connection", "keep-alive")
        }
    }
}

/// Why a request could not be read.
#[derive(Debug, PartialEq, Eq)]
enum ReadError {
    /// The connection ended (cleanly, between requests, or mid-request).
    Closed,
    /// The bytes are not a request this server understands; answer 400 and close.
    Malformed,
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        Self::Closed
    }
}

/// Reads one request head; `Closed` on end of stream before any byte.
fn read_head(reader: &mut impl BufRead) -> Result<RequestHead, ReadError> {
    let mut budget = MAX_HEAD_BYTES;
    // Tolerate empty lines before a request (RFC 9112 section 2.2).
    let request_line = loop {
        match next_line(reader, &mut budget)? {
            None => return Err(ReadError::Closed),
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed);
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(ReadError::Malformed),
    };
    if method.is_empty() || target.is_empty() {
        return Err(ReadError::Malformed);
    }
    let mut headers = Vec::new();
    loop {
        let line = next_line(reader, &mut budget)?.ok_or(ReadError::Closed)?;
        if line.is_empty() {
            break;
        }
        let (key, value) = line.split_once(':').ok_or(ReadError::Malformed)?;
        headers.push((key.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        http11,
        headers,
    })
}

/// Reads one line of at most `budget` bytes (which it lowers), without the line ending; `None`
/// at end of stream.
fn next_line(reader: &mut impl BufRead, budget: &mut usize) -> Result<Option<String>, ReadError> {
    let mut line = Vec::new();
    let read = reader
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if read > *budget || !line.ends_with(b"\n") {
        return Err(ReadError::Malformed);
    }
    *budget -= read;
    let text = String::from_utf8(line).map_err(|_| ReadError::Malformed)?;
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
}

/// Reads and discards the request body announced by `head`.
fn skip_body(reader: &mut impl BufRead, head: &RequestHead) -> Result<(), ReadError> {
    if head.has_token("transfer-encoding", "chunked") {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = size_line.trim().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(size, 16).map_err(|_| ReadError::Malformed)?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        return Ok(());
                    }
                }
            }
            discard(reader, size + 2)?;
        }
    }
    match head.header("content-length") {
        None => Ok(()),
        Some(length) => discard(reader, length.parse().map_err(|_| ReadError::Malformed)?),
    }
}

fn discard(reader: &mut impl BufRead, length: u64) -> Result<(), ReadError> {
    let copied = io::copy(&mut reader.take(length), &mut io::sink())?;
    if copied == length {
        Ok(())
    } else {
        Err(ReadError::Closed)
    }
}

/// The response to `head`: status line, headers and (unless HEAD) the body.
fn response(name: &str, head: &RequestHead, keep_alive: bool) -> Vec<u8> {
    let body = format!("sandbox {name}: {} {}\n", head.method, head.target);
    let mut response = format!(
        "HTTP/1.1 200 OK\r\n\
         content-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\n\
         {SERVED_BY_HEADER}: sandbox-{name}\r\n\
         connection: {}\r\n\r\n",
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    if head.method != "HEAD" {
        response.push_str(&body);
    }
    response.into_bytes()
}

const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

fn serve_http_connection(stream: TcpStream, name: &str) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    let _ = stream.set_nodelay(true);
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        let head = match read_head(&mut reader) {
            Ok(head) => head,
            Err(ReadError::Closed) => return Ok(()),
            Err(ReadError::Malformed) => return writer.write_all(BAD_REQUEST),
        };
        if head.has_token("expect", "100-continue") {
            writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        }
        match skip_body(&mut reader, &head) {
            Ok(()) => {}
            Err(ReadError::Closed) => return Ok(()),
            Err(ReadError::Malformed) => return writer.write_all(BAD_REQUEST),
        }
        let keep_alive = head.keep_alive();
        writer.write_all(&response(name, &head, keep_alive))?;
        if !keep_alive {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn parse(text: &str) -> Result<RequestHead, ReadError> {
        read_head(&mut Cursor::new(text.as_bytes().to_vec()))
    }

    #[test]
    fn parses_request_heads() {
        let head = parse("GET /a?b=c HTTP/1.1\r\nHost: x\r\nConnection: Close\r\n\r\n").unwrap();
        assert_eq!(head.method, "GET");
        assert_eq!(head.target, "/a?b=c");
        assert!(!head.keep_alive());
        assert!(parse("GET / HTTP/1.1\r\n\r\n").unwrap().keep_alive());
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive());
        assert!(
            parse("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
                .unwrap()
                .keep_alive()
        );
        assert_eq!(parse(""), Err(ReadError::Closed));
        assert_eq!(parse("GET / HTTP/1.1\r\nHost"), Err(ReadError::Malformed));
        assert_eq!(parse("GET /\r\n\r\n"), Err(ReadError::Malformed));
        assert_eq!(parse("GET / SPDY/3\r\n\r\n"), Err(ReadError::Malformed));
        assert_eq!(
            parse(&format!(
                "GET /{} HTTP/1.1\r\n\r\n",
                "a".repeat(MAX_HEAD_BYTES)
            )),
            Err(ReadError::Malformed)
        );
    }

    #[test]
    fn response_names_the_sandbox_and_echoes_method_and_path() {
        let head = parse("POST /orders/7 HTTP/1.1\r\n\r\n").unwrap();
        let response = String::from_utf8(response("demo", &head, true)).unwrap();
        assert_eq!(
            response,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: 29\r\nx-served-by: sandbox-demo\r\nconnection: keep-alive\r\n\r\n\
             sandbox demo: POST /orders/7\n"
        );
    }

    fn exchange(stream: &mut TcpStream, request: &str) -> String {
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        head + &String::from_utf8(body).unwrap()
    }

    #[test]
    fn http_service_keeps_connections_alive_and_skips_bodies() {
        let service =
            HttpService::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), "unit").unwrap();
        let address = service.local_addr().unwrap();
        thread::spawn(move || service.run());
        let mut stream = TcpStream::connect(address).unwrap();
        let first = exchange(
            &mut stream,
            "POST /one HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello",
        );
        assert!(
            first.ends_with("\r\n\r\nsandbox unit: POST /one\n"),
            "{first}"
        );
        assert!(first.contains("x-served-by: sandbox-unit\r\n"));
        let second = exchange(
            &mut stream,
            "PUT /two HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        );
        assert!(second.ends_with("sandbox unit: PUT /two\n"), "{second}");
        let third = exchange(
            &mut stream,
            "GET /three HTTP/1.1\r\nconnection: close\r\n\r\n",
        );
        assert!(third.contains("connection: close\r\n"));
        let mut rest = Vec::new();
        stream.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }

    #[test]
    fn echo_services_return_what_they_get() {
        let tcp = TcpEchoService::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        let udp = UdpEchoService::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        let (tcp_address, udp_address) = (tcp.local_addr().unwrap(), udp.local_addr().unwrap());
        thread::spawn(move || tcp.run());
        thread::spawn(move || udp.run());
        crate::probe::tcp_echo(tcp_address, Duration::from_secs(5)).unwrap();
        crate::probe::udp_echo(udp_address, Duration::from_secs(5)).unwrap();
    }
}
