//! A paid call runs to its end whatever its client does: once the hold may be placed, the
//! outcome must be recorded (and the hold settled) even if the client hangs up, which makes
//! hyper drop the request's handler mid-call.
//!
//! A task per call (`tokio::spawn`, then awaiting its handle) guarantees that, but costs every
//! call a trip through the scheduler: on a 2-core machine the spawned task often woke the other,
//! parked, worker to steal it (`bench/README.md`). [`Detached`] instead runs the call in place,
//! inside the request's own task, and hands it to a task of its own only when it is dropped
//! unfinished: the boxed call keeps its address, and its first poll in the new task registers
//! that task's waker (every future re-registers on each poll). A panic inside answers an internal
//! error, as a task's `JoinError` did.

use crate::error::{ApiError, ApiResult};
use futures::FutureExt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

type Call<T> = Pin<Box<dyn Future<Output = std::thread::Result<ApiResult<T>>> + Send>>;

/// `call`, awaited in place, and finished in the background if dropped before its answer.
pub struct Detached<T: Send + 'static>(Option<Call<T>>);

pub fn detached<T: Send + 'static>(call: impl Future<Output = ApiResult<T>> + Send + 'static) -> Detached<T> {
    Detached(Some(Box::pin(AssertUnwindSafe(call).catch_unwind())))
}

impl<T: Send + 'static> Future for Detached<T> {
    type Output = ApiResult<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Awaited once; after its answer there is nothing left to wait for.
        let Some(call) = self.0.as_mut() else { return Poll::Pending };
        let answer = ready!(call.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(answer.unwrap_or_else(|_| Err(ApiError(visa_core::Rejection::internal()))))
    }
}

impl<T: Send + 'static> Drop for Detached<T> {
    fn drop(&mut self) {
        // Outside a runtime (its shutdown) there is nowhere left to run it.
        if let (Some(call), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current()) {
            runtime.spawn(call);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// Dropped mid-call (the client hung up), the call still runs to its end.
    #[tokio::test]
    async fn a_call_dropped_unfinished_still_finishes() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let call = detached(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
            Ok(())
        });
        assert!(tokio::time::timeout(Duration::from_millis(10), call).await.is_err(), "it was still running");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(finished.load(Ordering::SeqCst), "the dropped call never finished");
    }

    #[tokio::test]
    async fn an_answer_passes_through_and_a_panic_is_an_internal_error() {
        assert_eq!(detached(async { Ok(7) }).await.unwrap(), 7);
        let panicked = detached(async {
            if true {
                panic!("a bug in a call");
            }
            Ok(())
        })
        .await;
        assert_eq!(panicked.unwrap_err().0.code, visa_core::ErrorCode::Internal);
    }
}
