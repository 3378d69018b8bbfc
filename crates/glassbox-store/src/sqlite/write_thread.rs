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
//! `SCHED_IDLE` (`WriterPolicy`, `store.writer_policy`) goes further: the thread runs only
//! when a core has nothing else to run, and a woken request thread preempts it at once. A
//! saturated machine gives such a thread no CPU at all, so it catches up: a job still
//! unfinished 50 ms after it was queued moves the thread to `SCHED_OTHER` at its nice value
//! for 2 s, then it tries `SCHED_IDLE` again. The thread checks that between rows and between
//! jobs, but starved it gets too little CPU to reach a check soon, so the caller waiting for
//! the job moves it as well (`idle::Watch::rescue`, from a short-lived thread; whichever comes
//! first claims the move, lock-free).
//! Leaving `SCHED_IDLE` needs `CAP_SYS_NICE` (or an `RLIMIT_NICE` of 20); without it the
//! thread would stay under it and on a saturated machine get CPU only when backpressure holds
//! requests back, which cost 14% of the peak (BENCHMARKS.md). So the default,
//! `WriterPolicy::Auto`, runs the thread under `SCHED_IDLE` only where a probe at start
//! (`sched_idle_is_reversible`) finds it may leave it again, and at its nice value elsewhere;
//! `Idle` forces it, `Normal` never uses it. Measured on 2 cores (BENCHMARKS.md, 6 alternated
//! rounds at 5,200 req/s): the added p99 +0.78 against +1.33 ms, lower in every round, at the
//! same peak.
//!
//! Where the nice value or policy cannot be set (another OS, a sandbox refusing it), the
//! thread logs that once and runs at the process's priority.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;
use std::time::Instant;

use crate::backend::StoreError;

/// The scheduling priority of the SQLite write thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterPriority {
    /// The thread's nice value, 0 (the process's priority) to 19 (runs only on CPU time
    /// nothing else wants). Never set below the process's own nice value (that needs
    /// privileges and would raise the thread above the requests). The default is the config's
    /// (`store.writer_nice`, 0; see the module documentation). Under `SCHED_IDLE`, the
    /// priority the thread catches up at when starved.
    pub nice: i32,
    /// Whether the thread runs under Linux's `SCHED_IDLE` (`store.writer_policy`). See the
    /// module documentation.
    pub policy: WriterPolicy,
}

/// The write thread's scheduling policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WriterPolicy {
    /// `SCHED_IDLE` where the thread may leave it again to catch up when starved
    /// ([`sched_idle_is_reversible`]: `CAP_SYS_NICE`, or an `RLIMIT_NICE` that allows the
    /// nice value), `SCHED_OTHER` at the nice value elsewhere. The server's default
    /// (`store.writer_policy = "auto"`).
    #[default]
    Auto,
    /// `SCHED_OTHER` at the nice value.
    Normal,
    /// `SCHED_IDLE` even where the thread cannot leave it: a saturated machine then gives it
    /// CPU only when backpressure holds requests back.
    Idle,
}

impl WriterPolicy {
    /// Whether a thread of this policy runs under `SCHED_IDLE`, deciding [`Auto`](Self::Auto)
    /// by a probe of this process's privileges (once per process and nice value).
    fn idle(self, nice: i32) -> bool {
        match self {
            Self::Normal => false,
            Self::Idle => true,
            Self::Auto => sched_idle_is_reversible(at_least_process_nice(nice)),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The handle to the thread; the thread ends when the handle is dropped (after the jobs sent
/// before).
pub(super) struct WriteThread {
    /// Each job with the time it was queued.
    jobs: mpsc::Sender<(Instant, Job)>,
    /// The thread's state under `SCHED_IDLE` (none while it runs otherwise).
    watch: std::sync::Arc<idle::Watch>,
}

impl WriteThread {
    pub(super) fn spawn(priority: WriterPriority) -> Result<WriteThread, StoreError> {
        let (jobs, inbox) = mpsc::channel::<(Instant, Job)>();
        let watch = idle::Watch::new();
        let thread_watch = std::sync::Arc::clone(&watch);
        std::thread::Builder::new()
            .name("glassbox-sqlite-writer".into())
            .spawn(move || {
                if priority.policy.idle(priority.nice) {
                    idle::enter(priority.nice, &thread_watch);
                } else {
                    lower_priority(priority.nice, "SQLite write thread");
                }
                drop(thread_watch);
                while let Ok((queued, job)) = inbox.recv() {
                    idle::job_started(queued);
                    job();
                }
            })
            .map_err(|source| StoreError::Unavailable { source: Box::new(source) })?;
        Ok(WriteThread { jobs, watch })
    }

    /// Runs `work` on the thread and waits (asynchronously) for its result. A panic in `work`
    /// is an error of this call, not the end of the thread. Under `SCHED_IDLE`, a job not done
    /// [`STARVED_AFTER`](idle::STARVED_AFTER) after it was queued moves the thread to its normal
    /// priority (`idle::Watch::rescue`).
    pub(super) async fn run<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce() -> Result<T, StoreError> + Send + 'static,
    {
        let (done, mut result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(work));
            // The caller may have stopped waiting (its future dropped): nothing to tell.
            let _ = done.send(outcome);
        });
        self.jobs.send((Instant::now(), job)).map_err(|_| stopped("the SQLite write thread has stopped"))?;
        // Watched while the thread may be under SCHED_IDLE: every STARVED_AFTER the job waits,
        // the thread is moved if it is (again) under it.
        while self.watch.watched() {
            tokio::select! {
                biased;
                outcome = &mut result => return finish(outcome),
                () = tokio::time::sleep(idle::STARVED_AFTER) => self.watch.rescue(&self.jobs),
            }
        }
        finish(result.await)
    }
}

/// The result of a job, sent back by the thread.
fn finish<T>(
    outcome: Result<std::thread::Result<Result<T, StoreError>>, tokio::sync::oneshot::error::RecvError>,
) -> Result<T, StoreError> {
    match outcome {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_panic)) => Err(stopped("a SQLite write panicked")),
        Err(_) => Err(stopped("the SQLite write thread has stopped")),
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

/// `nice`, or the process's own nice value if that is higher, in 0..=19: a thread of ours never
/// runs above the priority the process was started with.
pub(super) fn at_least_process_nice(nice: i32) -> i32 {
    #[cfg(target_os = "linux")]
    let nice = nice.max(rustix::process::getpriority_process(None).unwrap_or(0));
    nice.clamp(0, 19)
}

/// Lets the write thread catch up when its queue backs up, if it runs under SCHED_IDLE:
/// [`keep_up`] (called between rows of a batch) and [`job_started`] check how long the job
/// running now has been waiting since it was queued.
pub(super) use idle::keep_up;

/// Puts the calling thread under Linux's `SCHED_IDLE`: any woken thread of normal priority
/// preempts it at once. Entering the policy needs no privilege, and it resets the thread's
/// nice value to 0 where allowed; leaving it needs one ([`sched_idle_is_reversible`]).
pub(super) fn enter_sched_idle() -> Result<(), String> {
    idle::set_policy(idle::Policy::Idle)
}

/// Whether a thread of this process at nice `nice` may be moved from `SCHED_IDLE` back to
/// `SCHED_OTHER` (Linux asks for `CAP_SYS_NICE` in the initial user namespace, or an
/// `RLIMIT_NICE` that allows nice `nice`). Tried once per process and value, on a thread made
/// for it: it enters `SCHED_IDLE` at nice `nice` and leaves it.
#[cfg(target_os = "linux")]
pub(super) fn sched_idle_is_reversible(nice: i32) -> bool {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock, PoisonError};
    static TRIED: OnceLock<Mutex<HashMap<i32, bool>>> = OnceLock::new();
    let tried = TRIED.get_or_init(Mutex::default);
    if let Some(known) = tried.lock().unwrap_or_else(PoisonError::into_inner).get(&nice) {
        return *known;
    }
    let probe = std::thread::Builder::new().name("glassbox-sched-probe".into()).spawn(move || {
        let tid = Some(rustix::thread::gettid());
        idle::set_policy(idle::Policy::Idle).is_ok()
            && rustix::process::setpriority_process(tid, nice).is_ok()
            && idle::set_policy(idle::Policy::Normal { nice }).is_ok()
    });
    let reversible = probe.is_ok_and(|probe| probe.join().unwrap_or(false));
    tried.lock().unwrap_or_else(PoisonError::into_inner).insert(nice, reversible);
    reversible
}

#[cfg(not(target_os = "linux"))]
pub(super) fn sched_idle_is_reversible(_nice: i32) -> bool {
    false
}

mod idle {
    use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
    use std::sync::{Arc, OnceLock};
    use std::time::{Duration, Instant};

    use super::IdleThread;

    /// A job still unfinished this long after it was queued means the thread is starved: a
    /// batch is a few milliseconds of CPU, and with `SCHED_IDLE` a busy machine gives it none.
    pub(super) const STARVED_AFTER: Duration = Duration::from_millis(50);

    /// How long a starved thread runs at its normal priority before it tries `SCHED_IDLE` again.
    pub(super) const CATCH_UP_FOR: Duration = Duration::from_secs(2);

    const THREAD: &str = "SQLite write thread";

    /// [`Watch::mode`]: not under `SCHED_IDLE` at all (the policy was not taken).
    const OFF: u8 = 0;
    /// Under `SCHED_IDLE`.
    const IDLE: u8 = 1;
    /// At the normal priority, catching up, until [`Watch::catch_up_until`].
    const CATCHING_UP: u8 = 2;
    /// Being moved from one policy to the other, by the thread or a rescue.
    const MOVING: u8 = 3;
    /// Leaving (or entering again) `SCHED_IDLE` was refused: the policy stays as it is.
    const FIXED: u8 = 4;

    thread_local! {
        /// The write thread's own view: its watch and when the job running now was queued.
        /// `None` on every other thread.
        static ON_THREAD: std::cell::RefCell<Option<(Arc<Watch>, Instant)>> =
            const { std::cell::RefCell::new(None) };
    }

    /// The write thread's state under `SCHED_IDLE`, shared with the callers waiting for its
    /// jobs: a starved thread gets too little CPU to notice soon that it is starved (its own
    /// checks run between rows), so a caller whose job has waited [`STARVED_AFTER`] moves it
    /// too ([`rescue`](Self::rescue)). Lock-free: whoever moves the thread first claims the
    /// move (`MOVING`), so the thread and a rescue never both move it, and neither waits for
    /// the other (a thread under `SCHED_IDLE` may sit preempted for a long time).
    pub(in crate::sqlite) struct Watch {
        mode: AtomicU8,
        /// Milliseconds since `epoch`, while `CATCHING_UP`.
        catch_up_until: AtomicU64,
        epoch: Instant,
        thread: OnceLock<IdleThread>,
    }

    impl Watch {
        pub(in crate::sqlite) fn new() -> Arc<Self> {
            Arc::new(Watch {
                mode: AtomicU8::new(OFF),
                catch_up_until: AtomicU64::new(0),
                epoch: Instant::now(),
                thread: OnceLock::new(),
            })
        }

        /// Whether a caller should watch its job: the thread is under `SCHED_IDLE`, or may be
        /// back under it before the job is done.
        pub(in crate::sqlite) fn watched(&self) -> bool {
            matches!(self.mode.load(Ordering::Acquire), IDLE | CATCHING_UP | MOVING)
        }

        /// Called by a caller whose job has waited [`STARVED_AFTER`]: moves the thread, if it
        /// is under `SCHED_IDLE`, to its normal priority for [`CATCH_UP_FOR`], on a
        /// short-lived thread of its own (`IdleThread::to_normal` renices the calling thread).
        /// A clone of `jobs` (the thread's inbox) keeps the write thread from ending before the
        /// move is made.
        pub(in crate::sqlite) fn rescue<J: Send + 'static>(self: &Arc<Self>, jobs: &std::sync::mpsc::Sender<J>) {
            let Some(thread) = self.thread.get().copied() else { return };
            if !self.claim(IDLE) {
                return;
            }
            let (unstuck, keep_alive) = (Unstuck(Arc::clone(self)), jobs.clone());
            let rescue = move |moved| {
                unstuck.0.left_idle(moved, "a caller waited for it");
                drop((unstuck, keep_alive));
            };
            if let Err(error) = thread.to_normal_off_thread("glassbox-sqlite-rescue", rescue) {
                // The closure, and with it the claim, is gone: the thread's own checks go on.
                self.mode.store(IDLE, Ordering::Release);
                tracing::warn!(%error, "could not start a thread to move the starved {THREAD} out of SCHED_IDLE");
            }
        }

        /// Claims the move out of mode `from`.
        fn claim(&self, from: u8) -> bool {
            self.mode.compare_exchange(from, MOVING, Ordering::AcqRel, Ordering::Acquire).is_ok()
        }

        fn millis(&self, at: Instant) -> u64 {
            u64::try_from(at.duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
        }

        /// After a claim and the move to the normal priority (`moved`): catches up for
        /// [`CATCH_UP_FOR`], or stays as it is if the move failed.
        fn left_idle(&self, moved: Result<(), String>, why: &str) {
            match moved {
                Ok(()) => {
                    self.catch_up_until.store(self.millis(Instant::now() + CATCH_UP_FOR), Ordering::Release);
                    self.mode.store(CATCHING_UP, Ordering::Release);
                    tracing::debug!("the {THREAD} was starved ({why}); it catches up at its normal priority");
                }
                Err(error) => {
                    self.mode.store(FIXED, Ordering::Release);
                    tracing::warn!(%error,
                        "the {THREAD} cannot leave SCHED_IDLE to catch up (that needs CAP_SYS_NICE); on \
                         a saturated machine requests then wait for it through the telemetry queue's \
                         backpressure");
                }
            }
        }

        /// The thread's own check, between rows and at the start of each job.
        fn check(&self, queued: Instant) {
            let now = Instant::now();
            match self.mode.load(Ordering::Acquire) {
                CATCHING_UP
                    if self.millis(now) >= self.catch_up_until.load(Ordering::Acquire) && self.claim(CATCHING_UP) =>
                {
                    let _unstuck = Unstuck(self);
                    match set_policy(Policy::Idle) {
                        Ok(()) => self.mode.store(IDLE, Ordering::Release),
                        Err(error) => {
                            // It stays at its normal priority, as without the policy, for good.
                            self.mode.store(FIXED, Ordering::Release);
                            tracing::warn!(%error, "could not put the {THREAD} back under SCHED_IDLE");
                        }
                    }
                }
                IDLE if now.duration_since(queued) >= STARVED_AFTER => {
                    if let Some(thread) = self.thread.get().copied()
                        && self.claim(IDLE)
                    {
                        let _unstuck = Unstuck(self);
                        self.left_idle(thread.to_normal(), "its job waited");
                    }
                }
                _ => {}
            }
        }

        /// The mode, for tests.
        #[cfg(test)]
        pub(in crate::sqlite) fn idle_now(&self) -> bool {
            self.mode.load(Ordering::Acquire) == IDLE
        }
    }

    /// Ends a move that did not finish (a panic on the way): the mode would otherwise stay
    /// `MOVING`, and nothing would move the thread again. It stays as it is from then on.
    struct Unstuck<W: std::ops::Deref<Target = Watch>>(W);

    impl<W: std::ops::Deref<Target = Watch>> Drop for Unstuck<W> {
        fn drop(&mut self) {
            let _ = self.0.mode.compare_exchange(MOVING, FIXED, Ordering::AcqRel, Ordering::Acquire);
        }
    }

    /// Puts the calling thread under `SCHED_IDLE`, watched by `watch`; logs if it cannot (it
    /// then keeps the process's priority, and nothing more is tried).
    pub(super) fn enter(nice: i32, watch: &Arc<Watch>) {
        // Catching up never goes above the priority the thread started with (the process's).
        let nice = super::at_least_process_nice(nice);
        match set_policy(Policy::Idle) {
            Ok(()) => {
                tracing::debug!("the {THREAD} runs under SCHED_IDLE");
                let _ = watch.thread.set(IdleThread::current(nice));
                watch.mode.store(IDLE, Ordering::Release);
                ON_THREAD.set(Some((Arc::clone(watch), Instant::now())));
            }
            Err(error) => {
                tracing::warn!(%error,
                    "could not put the {THREAD} under SCHED_IDLE; it runs at the process's priority");
            }
        }
    }

    pub(super) fn job_started(queued: Instant) {
        ON_THREAD.with_borrow_mut(|on_thread| {
            if let Some((watch, job_queued)) = on_thread {
                *job_queued = queued;
                watch.check(queued);
            }
        });
    }

    /// Between rows of a batch: leaves `SCHED_IDLE` for [`CATCH_UP_FOR`] if the job has been
    /// waiting since it was queued for [`STARVED_AFTER`], or returns to it once that is over.
    /// Nothing on other threads.
    pub(in crate::sqlite) fn keep_up() {
        ON_THREAD.with_borrow(|on_thread| {
            if let Some((watch, queued)) = on_thread {
                watch.check(*queued);
            }
        });
    }

    pub(super) enum Policy {
        Idle,
        /// `SCHED_OTHER` at this nice value.
        Normal { nice: i32 },
    }

    /// Sets the calling thread's policy. For `Normal` the nice value is set next.
    #[cfg(target_os = "linux")]
    pub(super) fn set_policy(policy: Policy) -> Result<(), String> {
        set_policy_of(thread_priority::thread_native_id(), matches!(policy, Policy::Idle))?;
        match policy {
            Policy::Idle => Ok(()),
            Policy::Normal { nice } => rustix::process::setpriority_process(Some(rustix::thread::gettid()), nice)
                .map_err(|error| error.to_string()),
        }
    }

    /// Puts thread `pthread` under `SCHED_IDLE` (`idle`) or `SCHED_OTHER`. `thread_priority`
    /// sets the policy, then the nice value of the *calling* thread (0 for `SCHED_IDLE`, which
    /// a thread above 0 may not take without privilege; 19 for `SCHED_OTHER`): that second
    /// step may fail after the first worked, so what counts is the policy the thread ended up
    /// with.
    #[cfg(target_os = "linux")]
    pub(super) fn set_policy_of(pthread: thread_priority::ThreadId, idle: bool) -> Result<(), String> {
        use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
        let normal = if idle { NormalThreadSchedulePolicy::Idle } else { NormalThreadSchedulePolicy::Other };
        let wanted = ThreadSchedulePolicy::Normal(normal);
        match thread_priority::set_thread_priority_and_policy(pthread, ThreadPriority::Min, wanted) {
            Err(error)
                if !thread_priority::thread_schedule_policy_param(pthread).is_ok_and(|(now, _)| now == wanted) =>
            {
                Err(error.to_string())
            }
            _ => Ok(()),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn set_policy(_policy: Policy) -> Result<(), String> {
        Err("SCHED_IDLE is Linux's".to_owned())
    }
}

/// A thread under `SCHED_IDLE`, as another thread names it: the write thread, the checkpoint
/// thread.
#[derive(Debug, Clone, Copy)]
pub(super) struct IdleThread {
    /// Its nice value, which a rescue keeps.
    pub(super) nice: i32,
    #[cfg(target_os = "linux")]
    pthread: thread_priority::ThreadId,
    #[cfg(target_os = "linux")]
    pub(super) tid: rustix::thread::Pid,
}

impl IdleThread {
    /// The calling thread, at nice `nice`.
    #[cfg(target_os = "linux")]
    pub(super) fn current(nice: i32) -> Self {
        Self { nice, pthread: thread_priority::thread_native_id(), tid: rustix::thread::gettid() }
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn current(nice: i32) -> Self {
        Self { nice }
    }

    /// Moves the thread to `SCHED_OTHER` at its nice value; an error if the policy did not
    /// change. `set_policy_of` renices the calling thread: call it on the thread itself or through
    /// [`to_normal_off_thread`](Self::to_normal_off_thread).
    #[cfg(target_os = "linux")]
    pub(super) fn to_normal(self) -> Result<(), String> {
        idle::set_policy_of(self.pthread, false)?;
        if let Err(error) = rustix::process::setpriority_process(Some(self.tid), self.nice) {
            tracing::warn!(%error, nice = self.nice, "a thread moved out of SCHED_IDLE runs at another nice value");
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    pub(super) fn to_normal(self) -> Result<(), String> {
        Err("SCHED_IDLE is Linux's".to_owned())
    }

    /// [`to_normal`](Self::to_normal) from another thread: on a short-lived thread named
    /// `name` (it renices its calling thread, which must be one that does not matter), which
    /// then passes the outcome to `then`. An error if that thread could not start (`then` is
    /// dropped unrun).
    pub(super) fn to_normal_off_thread(
        self,
        name: &str,
        then: impl FnOnce(Result<(), String>) + Send + 'static,
    ) -> std::io::Result<()> {
        std::thread::Builder::new().name(name.to_owned()).spawn(move || then(self.to_normal())).map(drop)
    }
}

#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn work_runs_at_the_lowered_priority_and_a_panic_is_an_error_not_the_end_of_the_thread() {
        let process_nice = rustix::process::getpriority_process(None).unwrap();
        let thread = WriteThread::spawn(WriterPriority { nice: 15, policy: WriterPolicy::Normal }).unwrap();
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

    use super::sched_stat::{SCHED_IDLE, SCHED_OTHER};

    #[tokio::test]
    async fn under_sched_idle_a_starved_job_catches_up_at_normal_priority_then_the_thread_returns() {
        let thread = WriteThread::spawn(WriterPriority { nice: 0, policy: WriterPolicy::Idle }).unwrap();
        wait_until_idle(&thread).await;
        assert_ne!(scheduling_policy(), SCHED_IDLE, "the caller's policy");
        // A job still running STARVED_AFTER after it was queued (starved, it would not run;
        // here it sleeps), between two rows. Sent past `run`, whose caller-side rescue would
        // otherwise move the thread first: this is the thread's own check.
        let starved = run_unwatched(&thread, || {
            std::thread::sleep(idle::STARVED_AFTER + Duration::from_millis(10));
            keep_up();
            (scheduling_policy(), rustix::process::getpriority_process(None).unwrap())
        })
        .await;
        // The configured nice value, 0, or the process's if that is higher.
        let nice = rustix::process::getpriority_process(None).unwrap().clamp(0, 19);
        if sched_idle_is_reversible(nice) {
            assert_eq!(starved, (SCHED_OTHER, nice), "catching up: SCHED_OTHER at the configured nice value");
        } else {
            assert_eq!(starved.0, SCHED_IDLE, "without CAP_SYS_NICE the thread stays under SCHED_IDLE");
        }
        // Back under SCHED_IDLE once caught up (checked again until it is: on a loaded machine
        // the thread may be starved, and moved, once more meanwhile).
        tokio::time::sleep(idle::CATCH_UP_FOR + Duration::from_millis(50)).await;
        wait_until_idle(&thread).await;
    }

    #[tokio::test]
    async fn a_caller_whose_job_waits_moves_a_starved_thread_out_of_sched_idle() {
        let thread = WriteThread::spawn(WriterPriority { nice: 0, policy: WriterPolicy::Idle }).unwrap();
        wait_until_idle(&thread).await;
        // A job that makes no check of its own (a starved thread gets too little CPU to make
        // one soon): it outlasts STARVED_AFTER, so its caller moves the thread. The job waits
        // for the move for up to 5 s (a loaded machine may start the rescue late).
        let during = thread
            .run(|| {
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                std::thread::sleep(idle::STARVED_AFTER);
                while scheduling_policy() == SCHED_IDLE && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(scheduling_policy())
            })
            .await
            .unwrap();
        let nice = rustix::process::getpriority_process(None).unwrap().clamp(0, 19);
        if sched_idle_is_reversible(nice) {
            assert_eq!(during, SCHED_OTHER, "moved to SCHED_OTHER by the caller that waited");
        } else {
            assert_eq!(during, SCHED_IDLE, "without CAP_SYS_NICE the thread stays under SCHED_IDLE");
        }
        assert_ne!(scheduling_policy(), SCHED_IDLE, "the caller's policy");
    }

    #[tokio::test]
    async fn auto_runs_under_sched_idle_only_where_the_thread_can_leave_it() {
        let thread = WriteThread::spawn(WriterPriority { nice: 0, policy: WriterPolicy::Auto }).unwrap();
        let policy = thread.run(|| Ok(scheduling_policy())).await.unwrap();
        let nice = rustix::process::getpriority_process(None).unwrap().clamp(0, 19);
        if sched_idle_is_reversible(nice) {
            // Where SCHED_IDLE can be left to catch up, the thread runs under it.
            wait_until_idle(&thread).await;
        } else {
            assert_eq!(policy, SCHED_OTHER, "where SCHED_IDLE could not be left, the thread stays at SCHED_OTHER");
        }
        assert_eq!(WriterPriority { nice: 0, policy: WriterPolicy::default() }.policy, WriterPolicy::Auto);
    }

    /// Waits (up to 15 s) until the thread is under `SCHED_IDLE` and its watch says so: on a
    /// loaded machine a starved thread may be catching up (2 s) when a test looks.
    async fn wait_until_idle(thread: &WriteThread) {
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            // A job first: the thread checks its mode when a job starts.
            let policy = run_unwatched(thread, scheduling_policy).await;
            if policy == SCHED_IDLE && thread.watch.idle_now() {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "the write thread never went under SCHED_IDLE");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `work` on the thread like [`WriteThread::run`], without a caller watching it.
    async fn run_unwatched<T: Send + 'static>(thread: &WriteThread, work: impl FnOnce() -> T + Send + 'static) -> T {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
        });
        thread.jobs.send((std::time::Instant::now(), job)).unwrap();
        result.await.unwrap()
    }

    /// The calling thread's scheduling policy.
    fn scheduling_policy() -> u32 {
        sched_stat::policy_and_nice("/proc/thread-self/stat").0
    }
}

/// Test helpers: a thread's scheduling policy and nice value, as `/proc` shows them.
#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used)]
pub(super) mod sched_stat {
    pub(in crate::sqlite) const SCHED_OTHER: u32 = 0;
    pub(in crate::sqlite) const SCHED_IDLE: u32 = 5;

    /// Fields 41 (policy) and 19 (nice) of the `stat` file at `path`.
    pub(in crate::sqlite) fn policy_and_nice(path: &str) -> (u32, i32) {
        let stat = std::fs::read_to_string(path).unwrap();
        // Fields from the third on follow the command name's closing parenthesis.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..].split_whitespace().collect();
        (fields[41 - 3].parse().unwrap(), fields[19 - 3].parse().unwrap())
    }
}
