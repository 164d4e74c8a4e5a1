//! Fuzz target: arbitrary bytes into every decoding path of `mirrord-protocol`, as each message type of both
//! channels and of the handshake. The decoder must return errors, never panic, and whatever it accepts must
//! survive a round trip.

#![no_main]

use std::{fmt::Debug, io::Cursor};

use libfuzzer_sys::fuzz_target;
use mirrord_protocol::{
    AgentToClient, ClientToAgent, FrameDecoder, Hello, HelloReply, LayerToProxy, ProxyToLayer, decode_payload,
    encode, read_frame,
};
use serde::{Serialize, de::DeserializeOwned};

/// Feeds `data` to a `FrameDecoder` in chunks of `chunk` bytes, then to `read_frame`, then straight to the
/// payload decoder.
fn exercise<T: Serialize + DeserializeOwned + PartialEq + Debug>(data: &[u8], chunk: usize) {
    let mut decoder = FrameDecoder::new();
    'chunks: for piece in data.chunks(chunk) {
        decoder.push(piece);
        loop {
            match decoder.pop::<T>() {
                Ok(Some(message)) => round_trip(&message),
                Ok(None) => break,
                Err(error) if error.is_fatal() => break 'chunks,
                Err(_) => {}
            }
        }
    }

    let mut reader = Cursor::new(data);
    while let Ok(message) = read_frame::<T, _>(&mut reader) {
        round_trip(&message);
    }

    if let Ok(message) = decode_payload::<T>(data) {
        round_trip(&message);
    }
}

/// What decoded must encode, and decode again to the same value.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(message: &T) {
    let frame = encode(message).expect("a decoded message encodes");
    let again: T = decode_payload(&frame[4..]).expect("a re-encoded message decodes");
    assert_eq!(&again, message);
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the rest arrives: all at once, or split into small pieces.
    let Some((&first, data)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first).max(1);
    exercise::<LayerToProxy>(data, chunk);
    exercise::<ProxyToLayer>(data, chunk);
    exercise::<ClientToAgent>(data, chunk);
    exercise::<AgentToClient>(data, chunk);
    exercise::<Hello>(data, chunk);
    exercise::<HelloReply>(data, chunk);
});
