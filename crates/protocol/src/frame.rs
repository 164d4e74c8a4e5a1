//! Frames: a `u32` big-endian payload length, then the message encoded with `postcard`.
//!
//! [`encode`]/[`encode_into`] build frames, [`FrameDecoder`] takes bytes as they arrive and gives back whole
//! messages, and [`read_frame`]/[`write_frame`] do the same over any blocking `Read`/`Write` (the crate
//! itself opens nothing). A length above [`MAX_FRAME_LEN`] is an error before anything is allocated for it.

use std::{
    any::type_name,
    io::{self, Read, Write},
};

use serde::{Serialize, de::DeserializeOwned};

/// The largest payload a frame may carry, in bytes (16 MiB). Both ends reject larger frames.
pub const MAX_FRAME_LEN: u32 = 16 * 1024 * 1024;

/// The most bytes one read, write, connection-data or datagram message should carry (1 MiB): senders split
/// larger writes, and the agent reads at most this much per request.
pub const MAX_IO_CHUNK: u32 = 1024 * 1024;

/// The size of the length prefix, in bytes.
pub const LENGTH_PREFIX_LEN: usize = 4;

// A full I/O chunk plus its message header must fit in a frame with plenty to spare.
const _: () = assert!(MAX_IO_CHUNK * 2 <= MAX_FRAME_LEN);

/// How many payload bytes [`read_frame`] allocates before it has seen them arrive.
const READ_INITIAL_CAPACITY: usize = 64 * 1024;
/// Frames up to this size (a full data chunk and its envelope) are read into a buffer allocated at
/// once.
const EXACT_READ_LIMIT: usize = MAX_IO_CHUNK as usize + 64 * 1024;

/// Why a message could not be turned into a frame.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message is larger than [`MAX_FRAME_LEN`].
    #[error("message of {len} bytes exceeds the frame limit of {MAX_FRAME_LEN} bytes")]
    FrameTooLarge {
        /// The encoded size.
        len: usize,
    },
    /// The message could not be serialized (for example a filter nested too deep).
    #[error("message could not be serialized")]
    Serialize(#[source] postcard::Error),
}

/// Why bytes could not be turned into a message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The length prefix announces more than [`MAX_FRAME_LEN`]. Fatal: the stream cannot be trusted any more.
    #[error("frame length {len} exceeds the limit of {MAX_FRAME_LEN} bytes")]
    FrameTooLarge {
        /// The announced length.
        len: u32,
    },
    /// The payload is not a valid message of the expected type. The frame has been consumed, so the stream
    /// stays in step; whether to go on is the caller's choice.
    #[error("malformed {message_type} message")]
    Malformed {
        /// The Rust type that was expected.
        message_type: &'static str,
        /// What postcard found wrong.
        #[source]
        source: postcard::Error,
    },
    /// The payload holds a valid message followed by extra bytes. The frame has been consumed.
    #[error("{count} unexpected bytes after a {message_type} message")]
    TrailingBytes {
        /// The Rust type that was expected.
        message_type: &'static str,
        /// How many bytes were left over.
        count: usize,
    },
}

impl DecodeError {
    /// Whether the stream has lost its framing and must be closed. Other errors affect one frame only.
    pub fn is_fatal(&self) -> bool {
        matches!(self, Self::FrameTooLarge { .. })
    }
}

/// Encodes `message` as one frame.
pub fn encode<T: Serialize + ?Sized>(message: &T) -> Result<Vec<u8>, EncodeError> {
    let mut frame = Vec::new();
    encode_into(message, &mut frame)?;
    Ok(frame)
}

/// Appends one frame for `message` to `out` (handy to batch several frames into one write). On error `out`
/// is left as it was.
pub fn encode_into<T: Serialize + ?Sized>(
    message: &T,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_PREFIX_LEN]);
    if let Err(error) = postcard::to_extend(message, Appender(out)) {
        out.truncate(start);
        return Err(EncodeError::Serialize(error));
    }
    let len = out.len() - start - LENGTH_PREFIX_LEN;
    match u32::try_from(len) {
        Ok(len32) if len32 <= MAX_FRAME_LEN => {
            out[start..start + LENGTH_PREFIX_LEN].copy_from_slice(&len32.to_be_bytes());
            Ok(())
        }
        _ => {
            out.truncate(start);
            Err(EncodeError::FrameTooLarge { len })
        }
    }
}

/// How many bytes of frames [`encode_batch`] gathers before it stops taking more messages (256 KiB).
pub const BATCH_LEN: usize = 256 * 1024;

/// Appends frames for `first` and then for each message `next` gives, until `next` gives none or `out`
/// holds at least [`BATCH_LEN`] bytes. A writer draining its queue this way sends the messages that are
/// ready at once with one write (one system call, one TCP segment) instead of one write each. A message
/// that cannot be encoded is left out and its error returned; the others still go, in order.
pub fn encode_batch<T: Serialize>(
    first: T,
    mut next: impl FnMut() -> Option<T>,
    out: &mut Vec<u8>,
) -> Vec<EncodeError> {
    let mut errors = Vec::new();
    let mut message = Some(first);
    while let Some(current) = message.take() {
        if let Err(error) = encode_into(&current, out) {
            errors.push(error);
        }
        if out.len() < BATCH_LEN {
            message = next();
        }
    }
    errors
}

/// Lets postcard append to a borrowed vector (it wants an owned `Extend<u8>`).
struct Appender<'a>(&'a mut Vec<u8>);

impl Extend<u8> for Appender<'_> {
    fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
        self.0.extend(bytes);
    }
}

/// Decodes one frame's payload (without the length prefix). The whole payload must be one message.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    let message_type = type_name::<T>();
    match postcard::take_from_bytes::<T>(payload) {
        Ok((message, [])) => Ok(message),
        Ok((_, rest)) => Err(DecodeError::TrailingBytes {
            message_type,
            count: rest.len(),
        }),
        Err(source) => Err(DecodeError::Malformed {
            message_type,
            source,
        }),
    }
}

/// Reads a length prefix, rejecting lengths over the cap.
fn frame_len(prefix: [u8; LENGTH_PREFIX_LEN]) -> Result<u32, DecodeError> {
    let len = u32::from_be_bytes(prefix);
    if len > MAX_FRAME_LEN {
        Err(DecodeError::FrameTooLarge { len })
    } else {
        Ok(len)
    }
}

/// Turns a byte stream into messages: [`push`](FrameDecoder::push) bytes as they arrive, then
/// [`pop`](FrameDecoder::pop) until it returns `Ok(None)`.
///
/// Frames may be split across pushes, and one push may hold several frames. Memory stays bounded by what
/// was pushed and not yet popped: a length prefix is checked against [`MAX_FRAME_LEN`] as soon as its four
/// bytes are in, and nothing is reserved on its word. After a fatal error (see [`DecodeError::is_fatal`])
/// every `pop` returns that error again.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    /// Where the unread bytes of `buffer` start.
    start: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds bytes received from the peer.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        } else if self.start > 0 && self.start >= self.buffer.len() / 2 {
            // Moving the unread tail costs less than what was consumed before it, so this is amortised O(1).
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed.
    pub fn pop<T: DeserializeOwned>(&mut self) -> Result<Option<T>, DecodeError> {
        let Some(payload) = self.pop_payload()? else {
            return Ok(None);
        };
        let (from, to) = payload;
        decode_payload(&self.buffer[from..to]).map(Some)
    }

    /// The next complete frame's payload bounds in `buffer`, consumed.
    fn pop_payload(&mut self) -> Result<Option<(usize, usize)>, DecodeError> {
        let unread = &self.buffer[self.start..];
        let Some(prefix) = unread.first_chunk::<LENGTH_PREFIX_LEN>() else {
            return Ok(None);
        };
        let len = frame_len(*prefix)? as usize;
        if unread.len() - LENGTH_PREFIX_LEN < len {
            return Ok(None);
        }
        let from = self.start + LENGTH_PREFIX_LEN;
        self.start = from + len;
        Ok(Some((from, from + len)))
    }

    /// How many bytes were pushed and not yet popped.
    pub fn buffered_len(&self) -> usize {
        self.buffer.len() - self.start
    }
}

/// Why [`read_frame`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadFrameError {
    /// The peer closed the stream cleanly between two frames.
    #[error("the peer closed the connection")]
    Closed,
    /// Reading failed, or the stream ended inside a frame (`UnexpectedEof`).
    #[error("reading a frame failed")]
    Io(#[source] io::Error),
    /// The frame was read but is not a valid message.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// Reads one frame from a blocking reader and decodes it. A frame up to a data chunk's size is read into
/// one buffer of its size; a larger one is allocated as it arrives, never more
/// than [`MAX_FRAME_LEN`].
pub fn read_frame<T: DeserializeOwned, R: Read + ?Sized>(
    reader: &mut R,
) -> Result<T, ReadFrameError> {
    read_frame_with(reader, &mut Vec::new())
}

/// [`read_frame`] into the caller's `buffer`, kept for the next call: a reader of many data chunks
/// then reuses memory it already touched instead of faulting in fresh pages for every chunk. The
/// buffer grows to the largest frame up to a data chunk's size; a larger frame is read into memory
/// of its own, as [`read_frame`] does.
pub fn read_frame_with<T: DeserializeOwned, R: Read + ?Sized>(
    reader: &mut R,
    buffer: &mut Vec<u8>,
) -> Result<T, ReadFrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX_LEN];
    let mut filled = 0;
    while filled < LENGTH_PREFIX_LEN {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) if filled == 0 => return Err(ReadFrameError::Closed),
            Ok(0) => return Err(ReadFrameError::Io(io::ErrorKind::UnexpectedEof.into())),
            Ok(count) => filled += count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(ReadFrameError::Io(error)),
        }
    }
    let len = frame_len(prefix)? as usize;
    if len <= EXACT_READ_LIMIT {
        // The common case, a data chunk included: filled in place.
        if buffer.len() < len {
            buffer.resize(len, 0);
        }
        let payload = &mut buffer[..len];
        reader.read_exact(payload).map_err(ReadFrameError::Io)?;
        return Ok(decode_payload(payload)?);
    }
    // A large frame grows as its bytes arrive, so that a lying length costs nothing up front.
    let mut payload = Vec::with_capacity(READ_INITIAL_CAPACITY);
    reader
        .take(len as u64)
        .read_to_end(&mut payload)
        .map_err(ReadFrameError::Io)?;
    if payload.len() < len {
        return Err(ReadFrameError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(decode_payload(&payload)?)
}

/// Why [`write_frame`] failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteFrameError {
    /// The message could not be encoded; nothing was written.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Writing failed.
    #[error("writing a frame failed")]
    Io(#[source] io::Error),
}

/// Encodes `message` and writes the whole frame with one `write_all`. Does not flush.
pub fn write_frame<T: Serialize + ?Sized, W: Write + ?Sized>(
    writer: &mut W,
    message: &T,
) -> Result<(), WriteFrameError> {
    let frame = encode(message)?;
    writer.write_all(&frame).map_err(WriteFrameError::Io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_big_endian_length_then_postcard() {
        let frame = encode(&(1u8, "ab")).unwrap();
        assert_eq!(frame, [0, 0, 0, 4, 1, 2, b'a', b'b']);
    }

    #[test]
    fn encode_batch_frames_ready_messages_in_order_up_to_the_batch_length() {
        let mut queue: std::collections::VecDeque<Vec<u8>> =
            [vec![1u8; 10], vec![2; 10], vec![3; BATCH_LEN], vec![4; 10]].into();
        let mut out = Vec::new();
        let first = queue.pop_front().unwrap();
        assert!(encode_batch(first, || queue.pop_front(), &mut out).is_empty());
        // The third message filled the batch: the fourth waits for the next write.
        assert_eq!(queue.len(), 1);
        let mut decoder = FrameDecoder::new();
        decoder.push(&out);
        for expected in [vec![1u8; 10], vec![2; 10], vec![3; BATCH_LEN]] {
            assert_eq!(decoder.pop::<Vec<u8>>().unwrap(), Some(expected));
        }
        assert_eq!(decoder.pop::<Vec<u8>>().unwrap(), None);
    }

    #[test]
    fn encode_batch_leaves_out_what_cannot_be_encoded_and_keeps_the_rest() {
        let huge = vec![0u8; MAX_FRAME_LEN as usize + 1];
        let mut queue: std::collections::VecDeque<Vec<u8>> = [huge, vec![7u8; 3]].into();
        let mut out = Vec::new();
        let errors = encode_batch(vec![5u8], || queue.pop_front(), &mut out);
        assert!(matches!(errors[..], [EncodeError::FrameTooLarge { .. }]));
        let mut decoder = FrameDecoder::new();
        decoder.push(&out);
        assert_eq!(decoder.pop::<Vec<u8>>().unwrap(), Some(vec![5u8]));
        assert_eq!(decoder.pop::<Vec<u8>>().unwrap(), Some(vec![7u8; 3]));
    }

    #[test]
    fn encode_into_appends_and_leaves_earlier_frames_alone() {
        let mut out = encode(&7u32).unwrap();
        encode_into(&"x", &mut out).unwrap();
        let mut decoder = FrameDecoder::new();
        decoder.push(&out);
        assert_eq!(decoder.pop::<u32>().unwrap(), Some(7));
        assert_eq!(decoder.pop::<String>().unwrap().as_deref(), Some("x"));
        assert_eq!(decoder.pop::<String>().unwrap(), None);
    }

    #[test]
    fn read_frame_with_reuses_the_buffer_across_frames_of_any_size() {
        let chunk = crate::Bytes::from(vec![7u8; 100_000]);
        let mut stream = encode(&chunk).unwrap();
        encode_into(&"short", &mut stream).unwrap();
        let huge = crate::Bytes::from(vec![1u8; EXACT_READ_LIMIT + 1]);
        encode_into(&huge, &mut stream).unwrap();
        encode_into(&3u8, &mut stream).unwrap();
        let mut reader = io::Cursor::new(stream);
        let mut buffer = Vec::new();
        assert_eq!(
            read_frame_with::<crate::Bytes, _>(&mut reader, &mut buffer).unwrap(),
            chunk
        );
        let (pointer, capacity) = (buffer.as_ptr(), buffer.capacity());
        let short: String = read_frame_with(&mut reader, &mut buffer).unwrap();
        assert_eq!(short, "short");
        let read: crate::Bytes = read_frame_with(&mut reader, &mut buffer).unwrap();
        assert_eq!(read, huge);
        assert_eq!(
            read_frame_with::<u8, _>(&mut reader, &mut buffer).unwrap(),
            3
        );
        assert_eq!(
            (buffer.as_ptr(), buffer.capacity()),
            (pointer, capacity),
            "reused"
        );
        assert!(matches!(
            read_frame_with::<u8, _>(&mut reader, &mut buffer),
            Err(ReadFrameError::Closed)
        ));
    }

    #[test]
    fn failed_encode_leaves_earlier_frames_alone() {
        let mut out = encode(&1u8).unwrap();
        let mut too_deep = crate::incoming::HttpFilter::Path("x".into());
        for _ in 0..crate::incoming::MAX_FILTER_DEPTH {
            too_deep = crate::incoming::HttpFilter::AnyOf(vec![too_deep]);
        }
        let error = encode_into(&too_deep, &mut out).unwrap_err();
        assert!(matches!(error, EncodeError::Serialize(_)), "{error}");
        assert_eq!(out, encode(&1u8).unwrap());
    }

    #[test]
    fn oversized_message_is_not_encoded() {
        let mut out = encode(&1u8).unwrap();
        let huge = crate::Bytes::from(vec![0u8; MAX_FRAME_LEN as usize]);
        let error = encode_into(&huge, &mut out).unwrap_err();
        assert!(
            matches!(error, EncodeError::FrameTooLarge { .. }),
            "{error}"
        );
        assert_eq!(out, encode(&1u8).unwrap());
    }

    #[test]
    fn compaction_keeps_unread_bytes() {
        let mut decoder = FrameDecoder::new();
        let frames: Vec<u8> = (0..100u32).flat_map(|n| encode(&n).unwrap()).collect();
        let mut popped = Vec::new();
        for chunk in frames.chunks(7) {
            decoder.push(chunk);
            while let Some(n) = decoder.pop::<u32>().unwrap() {
                popped.push(n);
            }
        }
        assert_eq!(popped, (0..100).collect::<Vec<_>>());
        assert_eq!(decoder.buffered_len(), 0);
    }
}
