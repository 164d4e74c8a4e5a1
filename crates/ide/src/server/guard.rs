//! The panic guards every handler runs behind, and the internal requests: a malformed message
//! (answered with its error) and a panic on purpose (for tests).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};

use super::Backend;
use crate::errors;

/// A future that turns a panic of `inner` into `Err(payload)`.
struct CatchPanic<F> {
    inner: Pin<Box<F>>,
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = std::result::Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.inner.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(move || inner.poll(context))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

/// Runs a request handler; a panic becomes an [`errors::INTERNAL_PANIC`] error.
pub(super) async fn guard<T>(
    method: &'static str,
    handler: impl Future<Output = Result<T>>,
) -> Result<T> {
    match (CatchPanic {
        inner: Box::pin(handler),
    })
    .await
    {
        Ok(result) => result,
        Err(payload) => {
            tracing::error!(method, "request handler panicked");
            Err(errors::panic(method, payload.as_ref()))
        }
    }
}

/// Runs a notification handler; a panic is logged.
pub(super) async fn guard_notification(method: &'static str, handler: impl Future<Output = ()>) {
    if let Err(payload) = (CatchPanic {
        inner: Box::pin(handler),
    })
    .await
    {
        let error = errors::panic(method, payload.as_ref());
        tracing::error!(method, message = %error.message, "notification handler panicked");
    }
}

/// Parameters of the internal request a malformed message becomes (see `stdio`).
#[derive(Debug, serde::Deserialize)]
pub struct InvalidMessageParams {
    code: i64,
    message: String,
}

impl Backend {
    /// The internal request a malformed message becomes: answered with its error.
    pub async fn invalid_message(&self, params: InvalidMessageParams) -> Result<Value> {
        Err(Error {
            code: ErrorCode::from(params.code),
            message: params.message.into(),
            data: None,
        })
    }

    /// A request that panics, registered only with `MIRRORD_IDE_TEST_HOOKS=1` (tests show that
    /// a panic becomes an error response and the sidecar keeps serving).
    pub async fn test_panic(&self) -> Result<Value> {
        guard("$/mirrord/test/panic", async {
            if std::env::var_os(crate::TEST_HOOKS_ENV).is_some() {
                panic!("a panic requested by a test");
            }
            Ok(Value::Null)
        })
        .await
    }
}
