//! Batching of one kind of Redis script call: callers that arrive while a call is in flight
//! share the next one. With no linger, a request that finds nothing in flight goes at once
//! (no timer, no added latency when alone); a linger (for steps whose latency no client
//! waits on: the worker's `begin` and `record`, 10 and 50 ms by default) lets a batch
//! gather that long after its first request.
//! Under load one script call carries many payments, so Redis runs one Lua call and one
//! round trip for the lot (a group commit).
//!
//! Comes before: the store's per-batch scripts (`accept.lua`, `begin.lua`, `record.lua`).
//! Comes after: the store's per-payment methods, which callers use as before.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::StoreError;

type Reply<Resp> = oneshot::Sender<Result<Resp, StoreError>>;

/// Sends requests to a task that flushes them in batches of at most `max`.
pub struct Batcher<Req, Resp> {
    tx: mpsc::UnboundedSender<(Req, Reply<Resp>)>,
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// Spawns the batching task on the current runtime. `flush` gets the requests in
    /// arrival order and returns one response per request, in the same order; at most
    /// `in_flight` flushes run at once; a batch waits up to `linger` after its first request
    /// for more (never longer, and not at all once it is full). `op` labels the batch-size
    /// histogram.
    pub fn spawn<F, Fut>(
        op: &'static str,
        max: usize,
        in_flight: usize,
        linger: std::time::Duration,
        flush: F,
    ) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Resp>, StoreError>> + Send + 'static,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Req, Reply<Resp>)>();
        let permits = Arc::new(Semaphore::new(in_flight.max(1)));
        let max = max.max(1);
        tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                // Wait for one request, then take whatever else is already waiting (or
                // arrives within the linger).
                let Some(first) = rx.recv().await else { return };
                let mut batch = vec![first];
                let until = tokio::time::Instant::now() + linger;
                while batch.len() < max {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) if linger.is_zero() => break,
                        Err(_) => match tokio::time::timeout_at(until, rx.recv()).await {
                            Ok(Some(next)) => batch.push(next),
                            _ => break,
                        },
                    }
                }
                // A caller that went away (its task stopped, a crash in a test) takes its
                // request with it: nothing it can no longer act on is written for it.
                batch.retain(|(_, reply)| !reply.is_closed());
                if batch.is_empty() {
                    continue;
                }
                metrics::histogram!(crate::metrics::REDIS_BATCH_SIZE, "op" => op)
                    .record(batch.len() as f64);
                let (requests, replies): (Vec<Req>, Vec<Reply<Resp>>) = batch.into_iter().unzip();
                let call = flush(requests);
                tokio::spawn(async move {
                    let result = call.await;
                    drop(permit);
                    deliver(op, replies, result);
                });
            }
        });
        Self { tx }
    }

    /// Runs `req` in the next batch and returns its response.
    pub async fn call(&self, req: Req) -> Result<Resp, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((req, reply))
            .map_err(|_| StoreError::Unexpected("batcher stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unexpected("batcher stopped".into()))?
    }
}

/// Hands each caller its response; a failed call fails every request of the batch with the
/// same error (each caller then retries or answers as it would alone).
fn deliver<Resp>(op: &str, replies: Vec<Reply<Resp>>, result: Result<Vec<Resp>, StoreError>) {
    match result {
        Ok(responses) if responses.len() == replies.len() => {
            for (reply, response) in replies.into_iter().zip(responses) {
                let _ = reply.send(Ok(response));
            }
        }
        Ok(responses) => {
            let e = StoreError::Unexpected(format!(
                "{op}: {} replies for {} requests",
                responses.len(),
                replies.len()
            ));
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn callers_waiting_together_share_one_flush_and_get_their_own_answer() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let seen = flushes.clone();
        let batcher = Arc::new(Batcher::spawn(
            "test",
            100,
            1,
            Duration::ZERO,
            move |reqs: Vec<u32>| {
                seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::task::yield_now().await;
                    Ok(reqs.into_iter().map(|r| r * 10).collect())
                }
            },
        ));
        // A lone caller goes at once.
        assert_eq!(batcher.call(1).await.unwrap(), 10);
        assert_eq!(flushes.load(Ordering::SeqCst), 1);
        // 50 callers queued before the batching task runs: far fewer than 50 flushes.
        let calls: Vec<_> = (0..50)
            .map(|i| {
                let b = batcher.clone();
                tokio::spawn(async move { (i, b.call(i).await.unwrap()) })
            })
            .collect();
        for call in calls {
            let (i, answer) = call.await.unwrap();
            assert_eq!(answer, i * 10);
        }
        assert!(flushes.load(Ordering::SeqCst) <= 3, "{flushes:?}");
    }

    #[tokio::test]
    async fn a_failed_flush_fails_every_caller_of_the_batch() {
        let batcher = Batcher::spawn("test", 10, 1, Duration::ZERO, |_reqs: Vec<u32>| async {
            Err::<Vec<u32>, _>(StoreError::Unexpected("boom".into()))
        });
        assert!(matches!(
            batcher.call(1).await,
            Err(StoreError::Unexpected(m)) if m == "boom"
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_linger_gathers_a_batch_but_never_holds_one_longer() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let batcher = Arc::new(Batcher::spawn(
            "test",
            100,
            1,
            Duration::from_millis(10),
            move |reqs: Vec<u32>| {
                seen.lock().unwrap().push(reqs.len());
                async move { Ok(reqs) }
            },
        ));
        // Three callers 2 ms apart share one call (tokio's timers tick in milliseconds); a
        // fourth 50 ms later goes alone, after at most the linger.
        let mut calls = Vec::new();
        for i in 0..3 {
            let b = batcher.clone();
            calls.push(tokio::spawn(async move { b.call(i).await.unwrap() }));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for call in calls {
            call.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = tokio::time::Instant::now();
        assert_eq!(batcher.call(9).await.unwrap(), 9);
        assert!(started.elapsed() <= Duration::from_millis(11));
        assert_eq!(*sizes.lock().unwrap(), vec![3, 1]);
    }
}
