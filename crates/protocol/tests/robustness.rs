//! Hostile and broken input: oversized length prefixes, truncated frames, garbage payloads, and a
//! deterministic fuzz run. The decoder must answer with an error or "need more bytes", never panic, and never
//! allocate on the word of a length prefix.

mod samples;

use std::{
    fmt::Debug,
    io::{self, Cursor, Read},
};

use mirrord_protocol::{
    AgentToClient, ClientToAgent, DecodeError, FrameDecoder, Hello, HelloReply, LayerToProxy,
    MAX_FRAME_LEN, ProxyToLayer, ReadFrameError, decode_payload, encode,
};
use serde::{Serialize, de::DeserializeOwned};

/// Serves `prefix`, then an endless stream of bytes, counting how many bytes were asked for.
struct Endless {
    prefix: Vec<u8>,
    served: usize,
}

impl Read for Endless {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let count = buffer.len().min(4096);
        for (index, byte) in buffer[..count].iter_mut().enumerate() {
            *byte = self
                .prefix
                .get(self.served + index)
                .copied()
                .unwrap_or(0xaa);
        }
        self.served += count;
        Ok(count)
    }
}

#[test]
fn oversized_length_prefix_is_rejected_before_reading_or_allocating() {
    for len in [MAX_FRAME_LEN + 1, u32::MAX] {
        let mut decoder = FrameDecoder::new();
        decoder.push(&len.to_be_bytes());
        let error = decoder.pop::<ClientToAgent>().unwrap_err();
        assert!(
            matches!(error, DecodeError::FrameTooLarge { len: found } if found == len),
            "{error}"
        );
        assert!(error.is_fatal());
        // The stream cannot be trusted any more: the error sticks.
        decoder.push(&[0; 16]);
        assert!(matches!(
            decoder.pop::<ClientToAgent>(),
            Err(DecodeError::FrameTooLarge { .. })
        ));

        // Over a reader with endless bytes behind the prefix: nothing after the prefix is read.
        let mut reader = Endless {
            prefix: len.to_be_bytes().to_vec(),
            served: 0,
        };
        let mut exact = ExactReads {
            inner: &mut reader,
            max: 4,
        };
        let error = mirrord_protocol::read_frame::<ClientToAgent, _>(&mut exact).unwrap_err();
        assert!(
            matches!(
                error,
                ReadFrameError::Decode(DecodeError::FrameTooLarge { .. })
            ),
            "{error}"
        );
        assert_eq!(
            reader.served, 4,
            "read_frame read past a rejected length prefix"
        );
    }
}

/// Never hands out more than `max` bytes in one read, so a test can count exactly what was read.
struct ExactReads<'a, R> {
    inner: &'a mut R,
    max: usize,
}

impl<R: Read> Read for ExactReads<'_, R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let len = buffer.len().min(self.max);
        self.inner.read(&mut buffer[..len])
    }
}

#[test]
fn a_frame_at_the_cap_is_accepted_as_far_as_framing_goes() {
    // The length is legal, the payload garbage: a per-frame error, not a fatal one.
    let mut frame = MAX_FRAME_LEN.to_be_bytes().to_vec();
    frame.resize(4 + MAX_FRAME_LEN as usize, 0xff);
    let mut decoder = FrameDecoder::new();
    decoder.push(&frame);
    let error = decoder.pop::<ClientToAgent>().unwrap_err();
    assert!(!error.is_fatal(), "{error}");
    assert_eq!(decoder.buffered_len(), 0);
}

#[test]
fn truncated_frames_wait_for_more_bytes() {
    let frame = encode(&samples::client_to_agent()[0]).unwrap();
    for cut in 0..frame.len() {
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame[..cut]);
        assert_eq!(
            decoder.pop::<ClientToAgent>().unwrap(),
            None,
            "cut at {cut}"
        );
        assert_eq!(decoder.buffered_len(), cut);
        decoder.push(&frame[cut..]);
        assert_eq!(
            decoder.pop::<ClientToAgent>().unwrap().as_ref(),
            Some(&samples::client_to_agent()[0])
        );

        let error =
            mirrord_protocol::read_frame::<ClientToAgent, _>(&mut Cursor::new(&frame[..cut]))
                .unwrap_err();
        if cut == 0 {
            assert!(matches!(error, ReadFrameError::Closed), "{error}");
        } else {
            assert!(
                matches!(&error, ReadFrameError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof),
                "cut at {cut}: {error}"
            );
        }
    }
}

#[test]
fn garbage_payload_is_an_error_for_that_frame_only() {
    let garbage = [0u8, 0, 0, 3, 0xff, 0xff, 0xff];
    let good = encode(&ClientToAgent::Ping { nonce: 9 }).unwrap();
    let mut decoder = FrameDecoder::new();
    decoder.push(&garbage);
    decoder.push(&good);
    let error = decoder.pop::<ClientToAgent>().unwrap_err();
    assert!(matches!(error, DecodeError::Malformed { .. }), "{error}");
    assert!(error.to_string().starts_with("malformed "), "{error}");
    assert_eq!(
        decoder.pop::<ClientToAgent>().unwrap(),
        Some(ClientToAgent::Ping { nonce: 9 })
    );
}

#[test]
fn unknown_variant_is_malformed() {
    // Variant 200 of `ClientToAgent` does not exist (yet): what an older peer sees from a newer one.
    let error = decode_payload::<ClientToAgent>(&[0xc8, 0x01]).unwrap_err();
    assert!(matches!(error, DecodeError::Malformed { .. }), "{error}");
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut payload = encode(&ClientToAgent::Ping { nonce: 1 })
        .unwrap()
        .split_off(4);
    payload.push(0);
    let error = decode_payload::<ClientToAgent>(&payload).unwrap_err();
    assert!(
        matches!(error, DecodeError::TrailingBytes { count: 1, .. }),
        "{error}"
    );
}

#[test]
fn empty_payload_is_malformed_not_a_panic() {
    let mut decoder = FrameDecoder::new();
    decoder.push(&[0, 0, 0, 0]);
    assert!(matches!(
        decoder.pop::<Hello>(),
        Err(DecodeError::Malformed { .. })
    ));
}

/// xorshift64*: small, deterministic, good enough to shake a decoder.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Pushes `input` in random chunks and pops `T` until the decoder wants more or the stream is dead. Whatever
/// decodes must re-encode to something that decodes to the same value.
fn shake<T: Serialize + DeserializeOwned + PartialEq + Debug>(rng: &mut Rng, input: &[u8]) {
    let mut decoder = FrameDecoder::new();
    let mut rest = input;
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(1 + rng.below(rest.len()));
        rest = tail;
        decoder.push(chunk);
        loop {
            match decoder.pop::<T>() {
                Ok(Some(message)) => {
                    let again = decode_payload::<T>(&encode(&message).unwrap()[4..]).unwrap();
                    assert_eq!(again, message);
                }
                Ok(None) => break,
                Err(error) if error.is_fatal() => return,
                Err(_) => {}
            }
        }
    }
}

fn shake_all(rng: &mut Rng, input: &[u8]) {
    shake::<LayerToProxy>(rng, input);
    shake::<ProxyToLayer>(rng, input);
    shake::<ClientToAgent>(rng, input);
    shake::<AgentToClient>(rng, input);
    shake::<Hello>(rng, input);
    shake::<HelloReply>(rng, input);
}

/// Valid frames of every sample, to mutate.
fn seed_frames() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    frames.extend(
        samples::layer_to_proxy()
            .iter()
            .map(|message| encode(message).unwrap()),
    );
    frames.extend(
        samples::proxy_to_layer()
            .iter()
            .map(|message| encode(message).unwrap()),
    );
    frames.extend(
        samples::client_to_agent()
            .iter()
            .map(|message| encode(message).unwrap()),
    );
    frames.extend(
        samples::agent_to_client()
            .iter()
            .map(|message| encode(message).unwrap()),
    );
    frames.extend(
        samples::hellos()
            .iter()
            .map(|message| encode(message).unwrap()),
    );
    frames
}

/// Rewrites a frame's length prefix to match its (mutated) payload, so the payload decoder gets the bytes.
fn fix_length(frame: &mut [u8]) {
    let len = (frame.len() - 4) as u32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2_000 {
        let len = rng.below(64);
        let input = rng.bytes(len);
        shake_all(&mut rng, &input);
        // The same bytes behind an honest length prefix reach the payload decoder.
        let mut framed = vec![0; 4];
        framed.extend_from_slice(&input);
        fix_length(&mut framed);
        shake_all(&mut rng, &framed);
    }
}

#[test]
fn mutated_frames_never_panic() {
    let seeds = seed_frames();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..20_000 {
        let mut frame = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let at = 4 + rng.below(frame.len() - 4);
            match rng.below(5) {
                0 => frame[at] ^= 1 << rng.below(8),
                1 => frame[at] = rng.next() as u8,
                2 => frame[at] = [0x00, 0x7f, 0x80, 0xff][rng.below(4)],
                3 if frame.len() > 5 => {
                    frame.remove(at);
                }
                _ => frame.insert(at, rng.next() as u8),
            }
        }
        fix_length(&mut frame);
        shake_all(&mut rng, &frame);
        // Several frames back to back, the second one mutated, cut at a random point.
        let mut stream = seeds[rng.below(seeds.len())].clone();
        stream.extend_from_slice(&frame);
        stream.truncate(1 + rng.below(stream.len()));
        shake_all(&mut rng, &stream);
    }
}
