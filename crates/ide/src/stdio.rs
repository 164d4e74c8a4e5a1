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

use std::io::{BufRead, Read};
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::{Value, json};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

/// The internal method a malformed frame is turned into.
pub const INVALID_MESSAGE_METHOD: &str = "$/mirrord/invalidMessage";

/// Frames larger than this are skipped (and answered with an error).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// JSON-RPC "Parse error".
const PARSE_ERROR: i64 = -32700;
/// JSON-RPC "Invalid Request".
const INVALID_REQUEST: i64 = -32600;

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
            let mut input = std::io::BufReader::with_capacity(64 * 1024, input);
            while let Some(frame) = next_frame(&mut input) {
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

/// Reads one frame and returns it re-encoded (checked, or replaced); `None` at the end of input.
pub fn next_frame(input: &mut impl BufRead) -> Option<Vec<u8>> {
    loop {
        let mut content_length: Option<Result<usize, String>> = None;
        let mut saw_header = false;
        loop {
            let mut line = Vec::new();
            let read = input
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
            if let Some((name, value)) = line.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                content_length = Some(
                    value
                        .trim()
                        .parse::<usize>()
                        .map_err(|_| format!("invalid Content-Length `{}`", value.trim())),
                );
            }
        }
        let length = match content_length {
            Some(Ok(length)) => length,
            Some(Err(message)) => return Some(invalid(Value::Null, PARSE_ERROR, &message)),
            None => {
                return Some(invalid(
                    Value::Null,
                    PARSE_ERROR,
                    "a message without a Content-Length header",
                ));
            }
        };
        if length > MAX_MESSAGE_BYTES {
            // Keep the start to find the id, drop the rest without storing it.
            let mut head = vec![0u8; 256.min(length)];
            input.read_exact(&mut head).ok()?;
            let skipped = std::io::copy(
                &mut input.by_ref().take((length - head.len()) as u64),
                &mut std::io::sink(),
            )
            .ok()?;
            if skipped < (length - head.len()) as u64 {
                return None;
            }
            let id = leading_id(&head);
            tracing::warn!(length, "skipped a message larger than the limit");
            return Some(invalid(
                id,
                INVALID_REQUEST,
                &format!(
                    "the message is {length} bytes; the sidecar accepts at most {MAX_MESSAGE_BYTES}"
                ),
            ));
        }
        let mut body = vec![0u8; length];
        input.read_exact(&mut body).ok()?;
        if length == 0 {
            continue;
        }
        return Some(check_body(body));
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

fn check_body(body: Vec<u8>) -> Vec<u8> {
    let value: Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(error) => {
            return invalid(
                Value::Null,
                PARSE_ERROR,
                &format!("the message is not JSON: {error}"),
            );
        }
    };
    match problem(&value) {
        None => encode(&body),
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
        let mut reader = std::io::Cursor::new(input.to_vec());
        let mut out = Vec::new();
        while let Some(frame) = next_frame(&mut reader) {
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
}
