//! The sidecar's input: LSP frames read from stdin on a thread of their own, checked before the
//! LSP server sees them.
//!
//! `tower-lsp-server` stops reading for good after the first frame it cannot decode (its framed
//! reader ends on a decode error), so a single malformed message would end the sidecar. Here
//! every frame is read with its `Content-Length`, bodies above [`MAX_MESSAGE_BYTES`] are skipped
//! without being kept, and each body is checked to be a JSON-RPC 2.0 request, notification or
//! response. A bad frame is replaced by a request to [`INVALID_MESSAGE_METHOD`] carrying the id
//! (or `null`) and the error, which the server answers with that error: the client gets its
//! error response and the sidecar keeps serving.
//!
//! A message begins at a `Content-Length` header. After a broken one (no `Content-Length`, a
//! negative or unreadable one, or a body that does not fit its length) the reader answers it
//! once and resynchronises: the bytes up to the next `Content-Length:` are dropped, also when the
//! stray bytes and the next header share a line, or when a too-long length swallowed the start of
//! the next message.
//!
//! Requests that take no parameters (`mirrord/schema`, `shutdown`) are accepted with
//! `params: {}`, `[]` or `null` too (Neovim sends `{}`), and `mirrord/listTargets`, whose
//! parameters are all optional, without any.

use std::io::{BufRead, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::protocol::{CustomRequest, ListTargets, Schema};

/// The internal method a malformed frame is turned into.
pub const INVALID_MESSAGE_METHOD: &str = "$/mirrord/invalidMessage";

/// Frames larger than this are skipped (and answered with an error).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// JSON-RPC "Parse error".
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC "Invalid Request".
const INVALID_REQUEST: i64 = -32600;

/// Requests and notifications without parameters: empty `params` are dropped before the server
/// sees them.
const NO_PARAMS: [&str; 3] = [Schema::METHOD, "shutdown", "exit"];

/// Requests whose parameters are all optional: missing or `null` `params` become `{}`.
const OPTIONAL_PARAMS: [&str; 1] = [ListTargets::METHOD];

/// Where a message starts, compared without case.
const CONTENT_LENGTH: &[u8] = b"content-length:";

/// Starts the reader thread over `input`; the returned reader yields the checked frames and ends
/// when `input` does.
pub fn spawn_reader(
    input: impl Read + Send + 'static,
    closing: std::sync::Arc<tokio::sync::Notify>,
) -> ChannelReader {
    let (frame_tx, frame_rx) = mpsc::channel::<Vec<u8>>(64);
    std::thread::Builder::new()
        .name("mirrord-ide-stdin".to_owned())
        .spawn(move || {
            let mut reader = FrameReader::new(std::io::BufReader::with_capacity(64 * 1024, input));
            while let Some(frame) = reader.next_frame() {
                let exit = is_exit(&frame);
                if frame_tx.blocking_send(frame).is_err() || exit {
                    break;
                }
            }
            tracing::debug!("stdin closed or exit received");
            closing.notify_one();
        })
        .expect("spawning the stdin thread");
    ChannelReader {
        frame_rx,
        current: Vec::new(),
        position: 0,
    }
}

/// Reads LSP frames, resynchronising after broken ones.
#[derive(Debug)]
pub struct FrameReader<R> {
    input: Pushback<R>,
    /// Set after a broken message: its stray bytes are skipped up to the next `Content-Length:`.
    resync: bool,
}

impl<R: BufRead> FrameReader<R> {
    /// A reader of `input`.
    pub fn new(input: R) -> FrameReader<R> {
        FrameReader {
            input: Pushback {
                front: Vec::new(),
                position: 0,
                inner: input,
            },
            resync: false,
        }
    }

    /// Reads one frame and returns it re-encoded (checked, or replaced); `None` at the end of
    /// input.
    pub fn next_frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if std::mem::take(&mut self.resync) {
                self.skip_to_content_length()?;
            }
            let length = match self.read_header()? {
                Ok(length) => length,
                Err(message) => {
                    self.resync = true;
                    return Some(invalid(Value::Null, PARSE_ERROR, &message));
                }
            };
            if length > MAX_MESSAGE_BYTES {
                return self.skip_oversized(length);
            }
            let mut body = vec![0u8; length];
            self.input.read_exact(&mut body).ok()?;
            if length == 0 {
                continue;
            }
            return Some(match serde_json::from_slice::<Value>(&body) {
                Ok(value) => check_message(value, body),
                Err(error) => {
                    // A length that does not fit the body: the next message's header may be
                    // inside it (too long) or its own stray bytes follow it (too short).
                    if let Some(start) = find_content_length(&body[1..]) {
                        self.input.push_front(&body[1 + start..]);
                    }
                    self.resync = true;
                    invalid(
                        Value::Null,
                        PARSE_ERROR,
                        &format!("the message is not JSON: {error}"),
                    )
                }
            });
        }
    }

    /// Reads header lines up to the blank line: the `Content-Length`, or why there is none.
    /// `None` at the end of input.
    fn read_header(&mut self) -> Option<Result<usize, String>> {
        let mut content_length: Option<Result<usize, String>> = None;
        let mut saw_header = false;
        loop {
            let mut line = Vec::new();
            let read = self
                .input
                .by_ref()
                .take(8 * 1024)
                .read_until(b'\n', &mut line)
                .ok()?;
            if read == 0 {
                return None;
            }
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if saw_header {
                    break;
                }
                continue;
            }
            saw_header = true;
            // Bytes before the header on its line are strays of a broken message.
            if let Some(start) = find_content_length(line.as_bytes()) {
                let value = line[start + CONTENT_LENGTH.len()..].trim();
                content_length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| format!("invalid Content-Length `{value}`")),
                );
            }
        }
        Some(
            content_length
                .unwrap_or_else(|| Err("a message without a Content-Length header".to_owned())),
        )
    }

    /// Drops input up to (not including) the next `Content-Length:`; `None` at the end of input.
    fn skip_to_content_length(&mut self) -> Option<()> {
        let mut matched = 0;
        loop {
            let buffer = self.input.fill_buf().ok()?;
            if buffer.is_empty() {
                return None;
            }
            let mut end = None;
            for (index, byte) in buffer.iter().enumerate() {
                let byte = byte.to_ascii_lowercase();
                if byte == CONTENT_LENGTH[matched] {
                    matched += 1;
                } else {
                    // The needle's first byte appears nowhere else in it.
                    matched = usize::from(byte == CONTENT_LENGTH[0]);
                }
                if matched == CONTENT_LENGTH.len() {
                    end = Some(index + 1);
                    break;
                }
            }
            match end {
                Some(end) => {
                    self.input.consume(end);
                    self.input.push_front(b"Content-Length:");
                    return Some(());
                }
                None => {
                    let length = buffer.len();
                    self.input.consume(length);
                }
            }
        }
    }

    /// Skips a body over [`MAX_MESSAGE_BYTES`] without keeping it, answering it with its id.
    fn skip_oversized(&mut self, length: usize) -> Option<Vec<u8>> {
        // Keep the start to find the id, drop the rest without storing it.
        let mut head = vec![0u8; 256.min(length)];
        self.input.read_exact(&mut head).ok()?;
        let skipped = std::io::copy(
            &mut self.input.by_ref().take((length - head.len()) as u64),
            &mut std::io::sink(),
        )
        .ok()?;
        if skipped < (length - head.len()) as u64 {
            return None;
        }
        let id = leading_id(&head);
        tracing::warn!(length, "skipped a message larger than the limit");
        Some(invalid(
            id,
            INVALID_REQUEST,
            &format!(
                "the message is {length} bytes; the sidecar accepts at most {MAX_MESSAGE_BYTES}"
            ),
        ))
    }
}

/// Where `content-length:` (any case) starts in `bytes`.
fn find_content_length(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(CONTENT_LENGTH.len())
        .position(|window| window.eq_ignore_ascii_case(CONTENT_LENGTH))
}

/// A reader with bytes put back in front of it.
#[derive(Debug)]
struct Pushback<R> {
    front: Vec<u8>,
    position: usize,
    inner: R,
}

impl<R> Pushback<R> {
    fn push_front(&mut self, bytes: &[u8]) {
        let mut front = bytes.to_vec();
        front.extend_from_slice(&self.front[self.position..]);
        self.front = front;
        self.position = 0;
    }
}

impl<R: BufRead> Read for Pushback<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(buffer.len());
        buffer[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl<R: BufRead> BufRead for Pushback<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.position < self.front.len() {
            return Ok(&self.front[self.position..]);
        }
        self.inner.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if self.position < self.front.len() {
            self.position = (self.position + amount).min(self.front.len());
            if self.position == self.front.len() {
                self.front.clear();
                self.position = 0;
            }
        } else {
            self.inner.consume(amount);
        }
    }
}

/// Whether a checked frame is the `exit` notification.
fn is_exit(frame: &[u8]) -> bool {
    let body = frame
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map_or(frame, |start| &frame[start + 4..]);
    serde_json::from_slice::<Value>(body)
        .is_ok_and(|value| value.get("method").and_then(Value::as_str) == Some("exit"))
}

/// A parsed message, passed on (with its parameters made acceptable) or replaced.
fn check_message(mut value: Value, body: Vec<u8>) -> Vec<u8> {
    match problem(&value) {
        None => match normalise_params(&mut value) {
            true => encode(value.to_string().as_bytes()),
            false => encode(&body),
        },
        Some(message) => {
            let id = value
                .get("id")
                .filter(|id| id.is_string() || id.is_i64())
                .cloned()
                .unwrap_or(Value::Null);
            invalid(id, INVALID_REQUEST, &message)
        }
    }
}

/// Drops empty `params` of methods that take none and fills in missing ones where all are
/// optional; whether the message changed.
fn normalise_params(value: &mut Value) -> bool {
    let Some(object) = value.as_object_mut() else {
        return false;
    };
    let Some(method) = object.get("method").and_then(Value::as_str) else {
        return false;
    };
    if NO_PARAMS.contains(&method) {
        let empty = match object.get("params") {
            Some(Value::Object(params)) => params.is_empty(),
            Some(Value::Array(params)) => params.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        return empty && object.remove("params").is_some();
    }
    if OPTIONAL_PARAMS.contains(&method) && object.get("params").is_none_or(Value::is_null) {
        object.insert("params".to_owned(), Value::Object(serde_json::Map::new()));
        return true;
    }
    false
}

/// What makes `value` not a JSON-RPC 2.0 message, if anything.
fn problem(value: &Value) -> Option<String> {
    let Some(object) = value.as_object() else {
        return Some("a JSON-RPC message must be an object".to_owned());
    };
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some("the message must have \"jsonrpc\": \"2.0\"".to_owned());
    }
    let id_ok =
        |id: Option<&Value>| id.is_none_or(|id| id.is_null() || id.is_string() || id.is_i64());
    match object.get("method") {
        Some(Value::String(method)) if !method.is_empty() => {
            if !id_ok(object.get("id")) {
                return Some("the id must be a string, an integer or null".to_owned());
            }
            match object.get("params") {
                None | Some(Value::Object(_) | Value::Array(_) | Value::Null) => None,
                Some(_) => Some("params must be an object or an array".to_owned()),
            }
        }
        Some(_) => Some("the method must be a non-empty string".to_owned()),
        None => {
            let is_response = object.contains_key("id")
                && (object.contains_key("result") ^ object.contains_key("error"));
            if is_response && id_ok(object.get("id")) {
                None
            } else {
                Some("the message is neither a request, a notification nor a response".to_owned())
            }
        }
    }
}

/// The id of a message from its first bytes (`{"jsonrpc":"2.0","id":7,…`), if it is there.
fn leading_id(head: &[u8]) -> Value {
    let text = String::from_utf8_lossy(head);
    let Some(start) = text.find("\"id\"") else {
        return Value::Null;
    };
    let rest = text[start + 4..].trim_start();
    let Some(rest) = rest.strip_prefix(':') else {
        return Value::Null;
    };
    let rest = rest.trim_start();
    if let Some(quoted) = rest.strip_prefix('"') {
        return quoted
            .split('"')
            .next()
            .filter(|_| quoted.contains('"'))
            .map_or(Value::Null, |id| Value::String(id.to_owned()));
    }
    let digits: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse::<i64>().map_or(Value::Null, Value::from)
}

fn invalid(id: Value, code: i64, message: &str) -> Vec<u8> {
    tracing::warn!(%message, "malformed message");
    let request = json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": INVALID_MESSAGE_METHOD,
        "params": { "code": code, "message": message },
    });
    encode(request.to_string().as_bytes())
}

fn encode(body: &[u8]) -> Vec<u8> {
    let mut frame = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    frame.extend_from_slice(body);
    frame
}

/// Standard output written directly from the runtime's thread. `tokio::io::stdout()` hands every
/// write to the blocking thread pool and waits for it, which costs a thread hand-off or two per
/// message — most of the time a small LSP answer takes. A message is a few kilobytes, and the
/// client reads its end of the pipe all the time (every LSP client does), so the write returns at
/// once; input keeps flowing meanwhile on the reader thread.
#[derive(Debug, Clone, Copy)]
pub struct DirectStdout;

impl tokio::io::AsyncWrite for DirectStdout {
    fn poll_write(
        self: Pin<&mut Self>,
        _context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        use std::io::Write;
        Poll::Ready(std::io::stdout().lock().write(buffer))
    }

    fn poll_flush(self: Pin<&mut Self>, _context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        use std::io::Write;
        Poll::Ready(std::io::stdout().lock().flush())
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(context)
    }
}

/// An [`AsyncRead`] over the checked frames.
#[derive(Debug)]
pub struct ChannelReader {
    frame_rx: mpsc::Receiver<Vec<u8>>,
    current: Vec<u8>,
    position: usize,
}

impl AsyncRead for ChannelReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        while self.position >= self.current.len() {
            match self.frame_rx.poll_recv(context) {
                Poll::Ready(Some(frame)) => {
                    self.current = frame;
                    self.position = 0;
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
        let available = &self.current[self.position..];
        let count = available.len().min(buffer.remaining());
        buffer.put_slice(&available[..count]);
        self.position += count;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<Value> {
        let mut reader = FrameReader::new(std::io::Cursor::new(input.to_vec()));
        let mut out = Vec::new();
        while let Some(frame) = reader.next_frame() {
            let text = String::from_utf8(frame).unwrap();
            let (_, body) = text.split_once("\r\n\r\n").unwrap();
            out.push(serde_json::from_str(body).unwrap());
        }
        out
    }

    fn frame(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    #[test]
    fn passes_good_messages_and_replaces_bad_ones() {
        let input = [
            frame(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#),
            frame("{not json"),
            frame(r#"{"jsonrpc":"1.0","id":"a","method":"x"}"#),
            frame(r#"[1,2]"#),
            "Garbage: yes\r\n\r\n".to_owned(),
            frame(r#"{"jsonrpc":"2.0","id":2,"result":null}"#),
        ]
        .concat();
        let out = frames(input.as_bytes());
        assert_eq!(out.len(), 6);
        assert_eq!(out[0]["method"], "initialize");
        assert_eq!(out[1]["method"], INVALID_MESSAGE_METHOD);
        assert_eq!(out[1]["params"]["code"], PARSE_ERROR);
        assert_eq!(out[2]["id"], "a");
        assert_eq!(out[2]["params"]["code"], INVALID_REQUEST);
        assert_eq!(out[3]["id"], Value::Null);
        assert_eq!(out[4]["params"]["code"], PARSE_ERROR);
        assert_eq!(out[5]["result"], Value::Null);
    }

    #[test]
    fn skips_oversized_messages_but_keeps_their_id() {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":42,"method":"m","params":{{"t":"{}"}}}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        let input = [frame(&body), frame(r#"{"jsonrpc":"2.0","method":"n"}"#)].concat();
        let out = frames(input.as_bytes());
        assert_eq!(out[0]["id"], 42);
        assert_eq!(out[0]["method"], INVALID_MESSAGE_METHOD);
        assert_eq!(out[1]["method"], "n");
    }

    /// Each broken message is answered once and the next good one is served: the stray bytes
    /// used to merge with the next header, and every later request got -32700.
    #[test]
    fn resynchronises_after_broken_lengths() {
        let good = |id: u32| frame(&format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"m"}}"#));
        let body = r#"{"jsonrpc":"2.0","id":99,"method":"m"}"#;
        let cases = [
            ("no Content-Length", format!("X-Other: 1\r\n\r\n{body}")),
            ("negative", format!("Content-Length: -5\r\n\r\n{body}")),
            (
                "too short",
                format!("Content-Length: {}\r\n\r\n{body}", body.len() - 7),
            ),
            (
                "too long",
                format!("Content-Length: {}\r\n\r\n{body}", body.len() + 30),
            ),
        ];
        for (what, broken) in cases {
            let input = [good(1), broken, good(2), good(3)].concat();
            let out = frames(input.as_bytes());
            let ids: Vec<&Value> = out.iter().map(|message| &message["id"]).collect();
            assert_eq!(
                ids,
                [&json!(1), &Value::Null, &json!(2), &json!(3)],
                "{what}: {out:?}"
            );
            assert_eq!(out[1]["params"]["code"], PARSE_ERROR, "{what}");
            assert_eq!(out[2]["method"], "m", "{what}");
        }
    }

    #[test]
    fn empty_params_are_accepted_where_none_are_taken() {
        let input = [
            frame(r#"{"jsonrpc":"2.0","id":1,"method":"mirrord/schema","params":{}}"#),
            frame(r#"{"jsonrpc":"2.0","id":2,"method":"mirrord/schema","params":null}"#),
            frame(r#"{"jsonrpc":"2.0","id":3,"method":"shutdown","params":[]}"#),
            frame(r#"{"jsonrpc":"2.0","id":4,"method":"mirrord/schema","params":{"a":1}}"#),
            frame(r#"{"jsonrpc":"2.0","id":5,"method":"mirrord/listTargets"}"#),
        ]
        .concat();
        let out = frames(input.as_bytes());
        for message in &out[..3] {
            assert!(message.get("params").is_none(), "{message}");
        }
        assert_eq!(out[3]["params"], json!({"a": 1}), "non-empty params stay");
        assert_eq!(out[4]["params"], json!({}));
    }
}
