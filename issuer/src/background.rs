//! CPU work that nobody is waiting on at that moment — rendering a ticket mail's QR codes, images and PDF
//! for the outbox — runs on one thread of its own at a lower scheduling priority than the rest of the
//! issuer.
//!
//! In a sales spike the machine's cores are shared by the HTTP handlers, the order committer, the database
//! and the outbox, and a buyer waits for the order's answer but not for the mail, which the outbox
//! delivers seconds later anyway. Rendering on the async runtime took a worker thread away from answering
//! orders for each mail; at a nice value [`NICE_STEP`] above the process's, the kernel gives the render
//! thread what the orders leave of the processor, and the outbox catches up when the spike passes. When
//! the machine is idle the thread runs at full speed: lower priority costs nothing then.
//!
//! Jobs run one at a time, in the order given. A job that panics is answered with an error and the thread
//! carries on with the next.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::OnceLock;

use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// How much nicer than the process the render thread runs (Linux nice values: 19 is the nicest).
pub const NICE_STEP: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// The render thread's queue, started at first use; None if the thread could not be started.
static QUEUE: OnceLock<Option<mpsc::Sender<Job>>> = OnceLock::new();

fn queue() -> Option<&'static mpsc::Sender<Job>> {
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let started = std::thread::Builder::new().name("background".into()).spawn(move || {
                lower_priority();
                while let Ok(job) = rx.recv() {
                    job();
                }
            });
            match started {
                Ok(_) => Some(tx),
                Err(e) => {
                    tracing::warn!(error = %e, "no background thread: background work runs on the blocking pool");
                    None
                }
            }
        })
        .as_ref()
}

/// Lowers the calling thread's priority by [`NICE_STEP`]. On Linux the nice value belongs to the thread
/// (`setpriority(PRIO_PROCESS, 0, …)` names the calling thread), so the rest of the process keeps its own.
fn lower_priority() {
    let now = rustix::process::getpriority_process(None).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(None, (now + NICE_STEP).min(19)) {
        tracing::warn!(error = %e, "the background thread keeps the process's priority");
    }
}

/// Runs `work` on the background thread and waits for its result without blocking the async runtime.
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let (tx, rx) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = tx.send(catch_unwind(AssertUnwindSafe(work)));
    });
    match queue() {
        Some(queue) => {
            if let Err(mpsc::SendError(job)) = queue.send(job) {
                // The thread is gone (it cannot end while the queue lives, but do not lose the work).
                tokio::task::spawn_blocking(job);
            }
        }
        None => {
            tokio::task::spawn_blocking(job);
        }
    }
    match rx.await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_panic)) => Err(Error::internal("background work panicked")),
        Err(_) => Err(Error::internal("background work was dropped")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_at_a_lower_priority_than_the_caller_and_answers() {
        let caller = rustix::process::getpriority_process(None).unwrap();
        let (background, answer) = run(|| (rustix::process::getpriority_process(None).unwrap(), 6 * 7)).await.unwrap();
        assert_eq!(background, (caller + NICE_STEP).min(19));
        assert_eq!(answer, 42);
        // The caller's own priority did not move.
        assert_eq!(rustix::process::getpriority_process(None).unwrap(), caller);
    }

    #[tokio::test]
    async fn a_job_that_panics_is_an_error_and_the_next_job_still_runs() {
        let failed = run(|| -> u8 { panic!("a bug in a renderer") }).await;
        assert!(matches!(failed, Err(Error::Internal(_))), "{failed:?}");
        assert_eq!(run(|| 7).await.unwrap(), 7);
    }
}
