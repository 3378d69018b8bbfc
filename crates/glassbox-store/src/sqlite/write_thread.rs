//! The SQLite write connection's own OS thread, at a lowered scheduling priority.
//!
//! Every span and usage batch is one write transaction of milliseconds of CPU (JSON encoding,
//! inserts, index upkeep; WAL checkpoints run beside it, `checkpointer.rs`, except the
//! backstop's). On Tokio's blocking pool that work runs at the same priority as the
//! request-serving workers, so on a machine with few cores a batch takes a core away from
//! requests for its whole length, and the requests that arrive meanwhile may queue behind it.
//! So the write connection's work can run on one dedicated thread whose nice value is raised
//! (Linux: `setpriority(PRIO_PROCESS, tid)`, which applies to that thread alone): the kernel
//! then preempts it whenever a request thread wakes up, and it uses the CPU the requests leave.
//! Measured on 2 cores, a raised nice value did not lower the added p99 at half peak
//! (BENCHMARKS.md), so the thread runs at the process's priority by default.
//!
//! Under sustained load the telemetry writer's backpressure (`TelemetryWriter::admit`) makes
//! requests wait while the queue is three quarters full, and waiting requests leave the CPU
//! to this thread; but at a high nice value on a saturated machine that is how it gets the
//! CPU at all, and peak throughput pays for it (BENCHMARKS.md). So the default is 0.
//!
//! `SCHED_IDLE` (`WriterPriority::idle`, `store.writer_policy = "idle"`) goes further: the
//! thread runs only when a core has nothing else to run, and a woken request thread preempts
//! it at once. At 5,000 req/s on 2 cores the added p99 was 0.5 ms lower, but at saturation the
//! thread gets no CPU until backpressure holds requests back, and the peak was 14% lower
//! (BENCHMARKS.md). A thread cannot leave `SCHED_IDLE` without `CAP_SYS_NICE`, so the policy is
//! fixed for the thread's life, and opt-in.
//!
//! Where the nice value or policy cannot be set (another OS, a sandbox refusing it), the
//! thread logs that once and runs at the process's priority.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

use crate::backend::StoreError;

/// The scheduling priority of the SQLite write thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterPriority {
    /// The thread's nice value, 0 (the process's priority) to 19 (runs only on CPU time
    /// nothing else wants). Never set below the process's own nice value (that needs
    /// privileges and would raise the thread above the requests). The default is the config's
    /// (`store.writer_nice`, 0; see the module documentation).
    pub nice: i32,
    /// Linux's `SCHED_IDLE` instead (`store.writer_policy = "idle"`; `nice` is then unused):
    /// the thread runs only when a core has nothing else to run, and a woken request thread
    /// preempts it at once. See the module documentation for what it costs at saturation.
    pub idle: bool,
}

type Job = Box<dyn FnOnce() + Send>;

/// The handle to the thread; the thread ends when the handle is dropped (after the jobs sent
/// before).
pub(super) struct WriteThread {
    jobs: mpsc::Sender<Job>,
}

impl WriteThread {
    pub(super) fn spawn(priority: WriterPriority) -> Result<WriteThread, StoreError> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("glassbox-sqlite-writer".into())
            .spawn(move || {
                if priority.idle {
                    run_when_idle("SQLite write thread");
                } else {
                    lower_priority(priority.nice, "SQLite write thread");
                }
                while let Ok(job) = inbox.recv() {
                    job();
                }
            })
            .map_err(|source| StoreError::Unavailable { source: Box::new(source) })?;
        Ok(WriteThread { jobs })
    }

    /// Runs `work` on the thread and waits (asynchronously) for its result. A panic in `work`
    /// is an error of this call, not the end of the thread.
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(work));
            // The caller may have stopped waiting (its future dropped): nothing to tell.
            let _ = done.send(outcome);
        });
        self.jobs.send(job).map_err(|_| stopped("the SQLite write thread has stopped"))?;
        match result.await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_panic)) => Err(stopped("a SQLite write panicked")),
            Err(_) => Err(stopped("the SQLite write thread has stopped")),
        }
    }
}

fn stopped(message: &'static str) -> StoreError {
    StoreError::Unavailable { source: Box::new(std::io::Error::other(message)) }
}

/// Raises the calling thread's nice value to `nice` (never lowers it); logs once if it cannot.
/// `thread` names the thread in the messages.
pub(super) fn lower_priority(nice: i32, thread: &str) {
    let nice = nice.clamp(0, 19);
    #[cfg(target_os = "linux")]
    {
        let tid = Some(rustix::thread::gettid());
        let current = rustix::process::getpriority_process(tid).unwrap_or(0);
        if current >= nice {
            return;
        }
        match rustix::process::setpriority_process(tid, nice) {
            Ok(()) => tracing::debug!(nice, "{thread} runs at a lowered priority"),
            Err(error) => tracing::warn!(nice, %error,
                "could not lower the {thread}'s priority; it runs at the process's priority"),
        }
    }
    #[cfg(not(target_os = "linux"))]
    if nice > 0 {
        tracing::info!(
            nice,
            "per-thread priorities are not supported on this OS; the {thread} runs at the process's priority"
        );
    }
}

/// Puts the calling thread under `SCHED_IDLE`; logs once if it cannot. The change is for
/// good: leaving `SCHED_IDLE` needs `CAP_SYS_NICE` (or an `RLIMIT_NICE` of 20).
fn run_when_idle(thread: &str) {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
        let policy = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        match thread_priority::set_thread_priority_and_policy(
            thread_priority::thread_native_id(),
            ThreadPriority::Min,
            policy,
        ) {
            Ok(()) => tracing::debug!("{thread} runs under SCHED_IDLE"),
            Err(error) => tracing::warn!(error = ?error,
                "could not put the {thread} under SCHED_IDLE; it runs at the process's priority"),
        }
    }
    #[cfg(not(target_os = "linux"))]
    tracing::info!("SCHED_IDLE is Linux's; the {thread} runs at the process's priority");
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_at_the_lowered_priority_and_a_panic_is_an_error_not_the_end_of_the_thread() {
        let process_nice = rustix::process::getpriority_process(None).unwrap();
        let thread = WriteThread::spawn(WriterPriority { nice: 15, idle: false }).unwrap();
        let nice = thread
            .run(|| Ok(rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap()))
            .await
            .unwrap();
        assert_eq!(nice, process_nice.max(15), "the write thread's nice value");
        let panicked = thread.run::<(), _>(|| panic!("boom")).await;
        assert!(matches!(panicked, Err(StoreError::Unavailable { .. })), "{panicked:?}");
        let after = thread.run(|| Ok(7)).await.unwrap();
        assert_eq!(after, 7, "the thread still runs work after a panic");
        let caller = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_eq!(caller, process_nice, "only the write thread was reniced");
    }

    #[tokio::test]
    async fn work_runs_under_sched_idle_when_asked_and_the_caller_keeps_its_policy() {
        const SCHED_IDLE: u32 = 5;
        let thread = WriteThread::spawn(WriterPriority { nice: 0, idle: true }).unwrap();
        let policy = thread.run(|| Ok(scheduling_policy())).await.unwrap();
        assert_eq!(policy, SCHED_IDLE, "the write thread's scheduling policy");
        assert_ne!(scheduling_policy(), SCHED_IDLE, "the caller's policy");
        let nice = thread.run(|| Ok(7)).await.unwrap();
        assert_eq!(nice, 7, "work runs");
    }

    /// The calling thread's scheduling policy: field 41 of `/proc/thread-self/stat`.
    fn scheduling_policy() -> u32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Fields from the third on follow the command name's closing parenthesis.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().collect();
        fields[41 - 3].parse().unwrap()
    }
}
