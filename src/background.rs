//! The projections' own runtime: one worker thread, and its blocking pool for
//! snapshot loads and writes, at a lower CPU priority than the request path.
//!
//! Folding is never on a request's path (a query reads a view through its
//! reader's lock), but on a small machine the fold of the last call's events
//! used to land on the same two cores, and often the same tokio worker, as the
//! next call, and that call waited behind it: at one connection, the p99 of the
//! gateway's overhead was two to three times its p50 (BENCHMARKS.md, "Gateway").
//! On their own niced thread the folds still get every idle cycle, and a view
//! falls behind only while the request path keeps both cores busy; the feed's
//! bound then holds it at most 65,536 events back, and `min_position` queries
//! wait for it as before.

use std::io;

use tokio::runtime::{Builder, Handle, Runtime};

/// A runtime whose threads run at a lower priority (a higher nice value).
pub struct BackgroundRuntime {
    /// Taken on drop.
    runtime: Option<Runtime>,
}

impl BackgroundRuntime {
    /// Starts a runtime with one worker named `name`; every thread it starts
    /// (worker and blocking) runs `nice` below the thread calling this (0: the
    /// same priority).
    pub fn start(name: &str, nice: i32) -> io::Result<Self> {
        // A thread inherits its creator's nice value, and the blocking threads are
        // created by the (already lowered) worker: so each thread sets the value
        // from this base, instead of lowering what it inherited once more.
        let target = current_nice() + nice;
        let runtime = Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .thread_name(name)
            .on_thread_start(move || set_priority(target))
            .build()?;
        Ok(BackgroundRuntime {
            runtime: Some(runtime),
        })
    }

    /// Where to spawn the background work.
    pub fn handle(&self) -> Handle {
        match &self.runtime {
            Some(runtime) => runtime.handle().clone(),
            None => unreachable!("the runtime is only taken on drop"),
        }
    }
}

/// Dropping stops the runtime without waiting for what still runs on it (shut
/// the work down and await it first). A plain `Runtime` may not be dropped
/// inside an async context; this one may, so an early return of `serve` after
/// the projections started cannot panic.
impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for BackgroundRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackgroundRuntime").finish_non_exhaustive()
    }
}

/// The calling thread's nice value (0 where it cannot be read).
#[cfg(target_os = "linux")]
fn current_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
}

/// Linux keeps a nice value per thread, so this sets only the calling thread's.
#[cfg(target_os = "linux")]
fn set_priority(target: i32) {
    let thread = rustix::thread::gettid();
    if rustix::process::getpriority_process(Some(thread)).is_ok_and(|now| now == target) {
        return;
    }
    // Only ever a lowering, which needs no privilege: a thread here inherits
    // either the starter's value (the base) or the worker's (the target).
    if let Err(error) = rustix::process::setpriority_process(Some(thread), target) {
        tracing::warn!(%error, target, "could not lower a background thread's priority");
    }
}

/// Elsewhere the nice value may be per process, so nothing is changed.
#[cfg(not(target_os = "linux"))]
fn current_nice() -> i32 {
    0
}

/// Elsewhere the nice value may be per process, so nothing is changed.
#[cfg(not(target_os = "linux"))]
fn set_priority(_target: i32) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn own_nice() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).expect("getpriority")
    }

    /// The nice values of a worker task and a blocking task of a runtime started
    /// with `nice`.
    fn nice_inside(nice: i32) -> (i32, i32) {
        let background = BackgroundRuntime::start("test-background", nice).expect("runtime");
        let handle = background.handle();
        let worker = handle
            .block_on(handle.spawn(async { own_nice() }))
            .expect("worker task");
        // Spawned from the worker, as the projections spawn theirs: the blocking
        // thread is the (already lowered) worker's child.
        let blocking = handle
            .block_on(handle.spawn(async {
                tokio::task::spawn_blocking(own_nice)
                    .await
                    .expect("blocking task")
            }))
            .expect("worker task");
        (worker, blocking)
    }

    #[test]
    fn its_worker_and_blocking_threads_run_niced_and_the_caller_does_not() {
        let caller = own_nice();
        let lowered = (caller + 7).min(19);
        assert_eq!(nice_inside(7), (lowered, lowered));
        assert_eq!(own_nice(), caller, "the starting thread keeps its priority");
    }

    #[test]
    fn a_zero_nice_leaves_the_priority_alone() {
        let caller = own_nice();
        assert_eq!(nice_inside(0), (caller, caller));
    }

    #[tokio::test]
    async fn it_may_be_dropped_inside_an_async_context() {
        let background = BackgroundRuntime::start("test-background", 1).expect("runtime");
        let answer = background.handle().spawn(async { 42 }).await.expect("task");
        assert_eq!(answer, 42);
        drop(background);
    }
}
