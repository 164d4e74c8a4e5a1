//! The writing half of the intproxy ⇄ agent link, the same on both ends (the agent includes this
//! file by path): the messages queued by the time the writer runs go out together, as one write of
//! up to `encode_batch`'s limit, instead of one write (one system call, one TCP segment) each.

use mirrord_protocol::frame::encode_batch;
use serde::Serialize;
use tokio::{
    io::{AsyncWrite, AsyncWriteExt},
    sync::mpsc,
};

/// Writes what `queue` gives to `writer` until the queue closes (`Ok`) or a write fails (`Err`).
/// A message that cannot be encoded is left out with a warning naming `peer`; the others go, in
/// order.
pub(crate) async fn write_queued<T: Serialize>(
    queue: &mut mpsc::Receiver<T>,
    writer: &mut (impl AsyncWrite + Unpin),
    peer: &str,
) -> std::io::Result<()> {
    let mut batch = Vec::new();
    let mut busy = false;
    while let Some(message) = queue.recv().await {
        if busy {
            // Under load (the last write carried several messages), let the tasks that are ready
            // now (other connections' relays) queue theirs first, so that one write carries them
            // all; a lone message is written at once.
            tokio::task::yield_now().await;
        }
        batch.clear();
        let mut count = 0;
        let next = || {
            count += 1;
            queue.try_recv().ok()
        };
        for error in encode_batch(message, next, &mut batch) {
            tracing::warn!(%error, "left out a message the {peer} cannot be sent");
        }
        busy = count > 1;
        writer.write_all(&batch).await?;
    }
    Ok(())
}
