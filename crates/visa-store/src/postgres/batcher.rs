//! The node's group-committing writers for the money path: holds and settlements queue here,
//! and each writer (a thread with a pipelining connection of its own, `super::pipeline`) takes
//! every step waiting, up to `MOST_PER_BATCH`, and runs them in one transaction of two round
//! trips (`crate::sql::money::batch`). Under
//! load, batches grow by themselves while the previous one commits; alone, a step is a batch
//! of one. Each account's steps go to one writer (by the account's id), so that a node's
//! writers never queue on each other's row locks: one busy account fills its writer's batches,
//! and many accounts spread over the writers.
//!
//! A batch waits for row locks at most 200 ms (its `BEGIN`: another node stalled holding one of
//! its accounts must not hold up every account of this node). A batch that failed before its
//! COMMIT — that wait, a broken connection, a statement that failed — hands each step back, to
//! run alone on the pool (`PgEngine::write_money`), where one account's calls wait on their
//! own; only a COMMIT whose outcome could not be learnt answers every step with its error.

use super::pipeline::PipeConn;
use super::pool::Pool;
use crate::metrics::StoreMetrics;
use crate::sql::money::batch::{self, Done, Step};
use crate::{StoreError, StoreResult};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// The most steps one transaction carries.
const MOST_PER_BATCH: usize = 64;

/// What became of a queued step.
pub(super) enum Answer {
    Done(StoreResult<Done>),
    /// Not run (its batch failed before committing): run it alone.
    Alone(Step),
}

struct Job {
    step: Step,
    reply: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// One writer's queue.
#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

pub(super) struct Batcher {
    writers: Vec<Arc<Shared>>,
}

impl Batcher {
    /// Starts `writers` writer threads on connections from `pool`.
    pub fn start(pool: Arc<Pool>, writers: usize, metrics: StoreMetrics) -> Self {
        let writers: Vec<Arc<Shared>> = (0..writers.max(1)).map(|_| Arc::default()).collect();
        for (n, shared) in writers.iter().enumerate() {
            let (shared, pool, metrics) = (shared.clone(), pool.clone(), metrics.clone());
            std::thread::Builder::new()
                .name(format!("visa-pg-money-{n}"))
                .spawn(move || write(&shared, &pool, &metrics))
                .expect("spawn a PostgreSQL money writer");
        }
        Self { writers }
    }

    /// Queues `step`; what became of it.
    pub async fn submit(&self, step: Step) -> StoreResult<Answer> {
        let (reply, answer) = oneshot::channel();
        let writer = &self.writers[step.account().get().unsigned_abs() as usize % self.writers.len()];
        {
            let mut queue = writer.queue.lock().unwrap_or_else(|e| e.into_inner());
            if queue.closed {
                return Ok(Answer::Alone(step));
            }
            queue.jobs.push_back(Job { step, reply });
        }
        writer.ready.notify_one();
        // A writer that died mid-batch may have committed it.
        answer.await.map_err(|_| StoreError::Unavailable("a database writer failed; its outcome is unknown".into()))
    }
}

impl Drop for Batcher {
    /// The writers finish the steps queued, then close their connections and end.
    fn drop(&mut self) {
        for writer in &self.writers {
            writer.queue.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
            writer.ready.notify_all();
        }
    }
}

/// One writer: takes the steps waiting, runs them as one batch, answers each.
fn write(shared: &Shared, pool: &Arc<Pool>, metrics: &StoreMetrics) {
    let mut conn: Option<PipeConn> = None;
    loop {
        let jobs: Vec<Job> = {
            let mut queue = shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            while queue.jobs.is_empty() && !queue.closed {
                queue = shared.ready.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            if queue.jobs.is_empty() {
                return;
            }
            let take = queue.jobs.len().min(MOST_PER_BATCH);
            queue.jobs.drain(..take).collect()
        };
        let (steps, replies): (Vec<Step>, Vec<_>) = jobs.into_iter().map(|j| (j.step, j.reply)).unzip();
        let db = match conn.take().filter(|c| !c.is_closed()).map_or_else(|| PipeConn::connect(pool), Ok) {
            Ok(c) => conn.insert(c),
            Err(_) => {
                steps.into_iter().zip(replies).for_each(|(step, reply)| drop(reply.send(Answer::Alone(step))));
                continue;
            }
        };
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| batch::run(&*db, &steps)))
            .unwrap_or_else(|_| Err(StoreError::Internal("a money batch panicked".into())));
        match outcome {
            Ok(answers) => {
                metrics.made_durable(db.commit_took());
                metrics.committed(started.elapsed(), steps.len());
                replies.into_iter().zip(answers).for_each(|(reply, answer)| drop(reply.send(Answer::Done(answer))));
            }
            Err(error) if db.in_doubt() => {
                conn = None;
                replies.into_iter().for_each(|reply| drop(reply.send(Answer::Done(Err(error.clone())))));
            }
            Err(error) => {
                // Not committed: ended here, or the connection is not trusted with another.
                if !db.rollback() {
                    conn = None;
                }
                tracing::debug!(%error, steps = steps.len(), "a money batch failed; its steps run alone");
                steps.into_iter().zip(replies).for_each(|(step, reply)| drop(reply.send(Answer::Alone(step))));
            }
        }
    }
}
