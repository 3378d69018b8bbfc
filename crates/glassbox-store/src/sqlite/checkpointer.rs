//! WAL checkpoints on a thread of their own, at a lowered priority.
//!
//! In WAL mode every commit appends its pages to the `-wal` file, and a checkpoint copies them
//! into the database file. Left to SQLite, the connection that commits past
//! `wal_autocheckpoint` pages (1,000 by default, 4 MB) runs the checkpoint at the end of its
//! commit: on the write thread, a few milliseconds of copying and two `fsync`s at a stretch,
//! about 10 times a second at 5,000 requests a second. Those stretches hold a core of a small
//! machine while requests wait for it (BENCHMARKS.md: with this thread the added p99 at half
//! peak fell from +1.75 to +1.02 ms, lower in each of 4 alternated rounds, CPU per request 4%
//! lower).
//!
//! So the handle with a write thread (`SqliteBackend::open_with_priority`, the server's
//! telemetry store: one per process and file) gets a second connection on this thread, which
//! runs a `PASSIVE` checkpoint every [`INTERVAL`]: it copies what any handle has committed
//! without ever blocking a writer or a reader. Every handle's write connection keeps its own
//! checkpoint as a backstop, at [`BACKSTOP_PAGES`]: if this thread falls behind, the writer
//! checkpoints what is left and the WAL restarts from its beginning, so the `-wal` file stays
//! under about 80 MB. A process without a write thread (a CLI command, a test) checkpoints at
//! that backstop or when its last connection closes. A checkpoint that fails is retried at the
//! next interval and logged once until one succeeds again; the data stays safe in the WAL
//! meanwhile.
//!
//! Where the process may move a thread out of `SCHED_IDLE` again (`CAP_SYS_NICE`, or an
//! `RLIMIT_NICE` that allows nice 10; a probe at start-up tries it, `sched_idle_is_reversible`),
//! the thread runs under `SCHED_IDLE` at nice 10 (or the process's, if higher): a woken
//! request thread preempts it at once, where at nice 10 it waited for the checkpoint's time slice
//! (BENCHMARKS.md: the added p99 at half peak +0.36 against +0.92 ms, lower in 6 of 6
//! alternated rounds). A saturated machine gives such a thread almost no CPU, and a checkpoint
//! starved half-way holds the WAL's checkpoint lock, so the writer's backstop cannot run and
//! the WAL grows (to 553 MB in 15 s of a closed loop beside two CPU burners). Hence the watch:
//! a checkpoint still running after [`STUCK_AFTER`] is moved to `SCHED_OTHER` at its nice value
//! to finish ([`Checkpointer::rescue_if_stuck`], called after each write job, from a thread
//! of normal priority), and the thread returns to `SCHED_IDLE` for its next checkpoint. If
//! that move fails, the checkpoint is interrupted (`sqlite3_interrupt`; the thread lets go of
//! the lock when it next runs; an interrupt that came before the statement started is cleared,
//! so the checkpoint is watched again) and the thread leaves checkpoints to the writer's
//! backstop for a while ([`PAUSE_AFTER_INTERRUPT`]). Beside the burners the `-wal` file then
//! peaked at 101–126 MB with rescues, 363–438 MB with interrupts alone, against 82–99 MB at
//! nice 10. Elsewhere (no such privilege, another OS) the thread runs at nice [`NICE`], as it
//! did before.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use rusqlite::{ErrorCode, InterruptHandle};

use super::write_thread::{
    IdleThread, at_least_process_nice, enter_sched_idle, lower_priority, sched_idle_is_reversible,
};
use super::{ConnectionRole, open_connection};
use crate::backend::StoreError;

/// How often the thread checkpoints.
pub(super) const INTERVAL: Duration = Duration::from_millis(100);

/// The thread's nice value outside `SCHED_IDLE`.
pub(super) const NICE: i32 = 10;

/// A checkpoint still running this long is taken to be starved and is rescued. Copying what
/// 100 ms of writes left takes a few milliseconds of CPU.
pub(super) const STUCK_AFTER: Duration = Duration::from_millis(250);

/// How long the thread leaves checkpoints to the writer's backstop after one of its own was
/// interrupted: the machine is busy, and another checkpoint would likely starve too. Each
/// interruption in a row doubles the pause, up to [`MAX_PAUSE`]; a checkpoint that completes
/// resets it.
pub(super) const PAUSE_AFTER_INTERRUPT: Duration = Duration::from_secs(2);

/// The longest pause after interrupted checkpoints.
pub(super) const MAX_PAUSE: Duration = Duration::from_secs(32);

/// The write connection's `wal_autocheckpoint` (pages of 4 KB) while this thread runs.
pub(super) const BACKSTOP_PAGES: u32 = 20_000;

/// The checkpoint thread; it ends when this handle is dropped (without waiting for it).
pub(super) struct Checkpointer {
    /// Dropping every clone ends the thread: a rescue holds one, so the thread it names lives
    /// until the rescue is done.
    stop: mpsc::Sender<()>,
    watch: Arc<Watch>,
}

/// What a writer sees of the checkpoint running now.
struct Watch {
    epoch: Instant,
    /// When the running checkpoint started, in milliseconds since `epoch` plus 1; 0 when none
    /// runs (or it has been rescued).
    running_since: AtomicU64,
    /// Counts the thread's checkpoints: a rescue that fell back to an interrupt watches the
    /// same checkpoint again only if it still runs.
    generation: AtomicU64,
    interrupt: InterruptHandle,
    /// The thread, once it runs under `SCHED_IDLE`: what a rescue moves out of it.
    idle_thread: OnceLock<IdleThread>,
    /// Set by a rescue that moved the thread out of `SCHED_IDLE`: it goes back before its next
    /// checkpoint.
    rescued: AtomicBool,
}

impl Watch {
    fn mark(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }
}

impl Checkpointer {
    /// Starts checkpointing the database at `path` (a file in WAL mode), on a connection of
    /// its own.
    pub(super) fn spawn(path: &Path) -> Result<Checkpointer, StoreError> {
        let connection = open_connection(path, ConnectionRole::Checkpointer)?;
        let watch = Arc::new(Watch {
            epoch: Instant::now(),
            running_since: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            interrupt: connection.get_interrupt_handle(),
            idle_thread: OnceLock::new(),
            rescued: AtomicBool::new(false),
        });
        let (stop, stopped) = mpsc::channel::<()>();
        let path = path.display().to_string();
        let thread_watch = Arc::clone(&watch);
        std::thread::Builder::new()
            .name("glassbox-wal-checkpoint".into())
            .spawn(move || {
                let watch = thread_watch;
                // Never above the process's own priority, in or out of `SCHED_IDLE`.
                let nice = at_least_process_nice(NICE);
                lower_priority(nice, "SQLite checkpoint thread");
                if sched_idle_is_reversible(nice) {
                    match idle_at(nice) {
                        Ok(()) => {
                            let _ = watch.idle_thread.set(IdleThread::current(nice));
                        }
                        Err(error) => {
                            tracing::debug!(%error, "the SQLite checkpoint thread cannot run under SCHED_IDLE")
                        }
                    }
                }
                let mut schedule = Schedule::default();
                let mut failing = false;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    if !schedule.due(Instant::now()) {
                        continue;
                    }
                    if watch.rescued.swap(false, Ordering::AcqRel)
                        && let Err(error) = idle_at(nice)
                    {
                        tracing::warn!(%error, "could not put the SQLite checkpoint thread back under SCHED_IDLE");
                    }
                    watch.generation.fetch_add(1, Ordering::AcqRel);
                    watch.running_since.store(watch.mark(), Ordering::Release);
                    let result = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    watch.running_since.store(0, Ordering::Release);
                    if result.is_ok() {
                        schedule.completed();
                    }
                    match result {
                        Ok(()) if failing => {
                            failing = false;
                            tracing::info!(path, "SQLite WAL checkpoints work again");
                        }
                        Ok(()) => {}
                        Err(error) if error.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) => {
                            schedule.interrupted(Instant::now());
                            tracing::debug!(path, "a starved SQLite WAL checkpoint was interrupted; the writer \
                                checkpoints at its backstop for a while");
                        }
                        Err(error) if !failing => {
                            failing = true;
                            tracing::warn!(path, error = %error,
                                "a SQLite WAL checkpoint failed; retried every interval, and the write connection \
                                 checkpoints at its backstop meanwhile");
                        }
                        Err(_) => {}
                    }
                }
            })
            .map_err(|source| StoreError::Unavailable { source: Box::new(source) })?;
        Ok(Checkpointer { stop, watch })
    }

    /// Rescues the running checkpoint if it has run under `SCHED_IDLE` for [`STUCK_AFTER`]:
    /// starved, it would hold the checkpoint lock and keep the writer's backstop from bounding
    /// the WAL. It is moved to `SCHED_OTHER` to finish, or else interrupted. An atomic load
    /// when no checkpoint runs; the move itself is made on a short-lived thread of its own.
    pub(super) fn rescue_if_stuck(&self) {
        let Some(idle_thread) = self.watch.idle_thread.get().copied() else { return };
        let since = self.watch.running_since.load(Ordering::Acquire);
        if since == 0 || self.watch.mark().saturating_sub(since) < millis(STUCK_AFTER) {
            return;
        }
        // Once per checkpoint.
        let generation = self.watch.generation.load(Ordering::Acquire);
        if self.watch.running_since.compare_exchange(since, 0, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return;
        }
        let (watch, keep_alive) = (Arc::clone(&self.watch), self.stop.clone());
        let rescue = move |moved: Result<(), String>| {
            match moved {
                Ok(()) => {
                    watch.rescued.store(true, Ordering::Release);
                    tracing::debug!("a starved SQLite WAL checkpoint finishes at normal priority");
                }
                Err(error) => {
                    // An interrupt that lands just after the checkpoint ended is cleared when
                    // the connection's next statement starts; so is one that lands before the
                    // checkpoint's statement started, so the checkpoint, if it still runs, is
                    // watched again and interrupted again later.
                    watch.interrupt.interrupt();
                    if watch.generation.load(Ordering::Acquire) == generation {
                        let (again, order) = (watch.mark(), Ordering::AcqRel);
                        let _ = watch.running_since.compare_exchange(0, again, order, Ordering::Acquire);
                    }
                    tracing::warn!(%error, "could not move a starved SQLite WAL checkpoint out of SCHED_IDLE; it \
                        is interrupted, and the writer checkpoints at its backstop for a while");
                }
            }
            // The checkpoint thread, named by `idle_thread`, may end from here on.
            drop(keep_alive);
        };
        if let Err(error) = idle_thread.to_normal_off_thread("glassbox-wal-rescue", rescue) {
            self.watch.interrupt.interrupt();
            tracing::warn!(%error,
                "could not start a thread to rescue a starved SQLite WAL checkpoint; it is interrupted");
        }
    }
}

/// Puts the calling thread under `SCHED_IDLE` at nice `nice` (entering the policy resets the
/// nice value): a rescue keeps the nice value, and it decides whether one may
/// ([`sched_idle_is_reversible`]).
fn idle_at(nice: i32) -> Result<(), String> {
    enter_sched_idle()?;
    lower_priority(nice, "SQLite checkpoint thread");
    Ok(())
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// When the thread checkpoints: every interval, except for a pause after an interrupted
/// checkpoint ([`PAUSE_AFTER_INTERRUPT`], doubling while interruptions follow each other).
#[derive(Debug)]
struct Schedule {
    paused_until: Option<Instant>,
    /// The next pause.
    pause: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self { paused_until: None, pause: PAUSE_AFTER_INTERRUPT }
    }
}

impl Schedule {
    fn due(&mut self, now: Instant) -> bool {
        match self.paused_until {
            Some(until) if now < until => false,
            Some(_) => {
                self.paused_until = None;
                true
            }
            None => true,
        }
    }

    fn interrupted(&mut self, now: Instant) {
        self.paused_until = Some(now + self.pause);
        self.pause = (self.pause * 2).min(MAX_PAUSE);
    }

    fn completed(&mut self) {
        self.pause = PAUSE_AFTER_INTERRUPT;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn after_an_interrupted_checkpoint_the_thread_pauses_longer_each_time_until_one_completes() {
        let start = Instant::now();
        let mut schedule = Schedule::default();
        assert!(schedule.due(start));
        assert!(schedule.due(start + INTERVAL));
        schedule.interrupted(start);
        assert!(!schedule.due(start + INTERVAL));
        assert!(!schedule.due(start + PAUSE_AFTER_INTERRUPT - Duration::from_millis(1)));
        assert!(schedule.due(start + PAUSE_AFTER_INTERRUPT));
        assert!(schedule.due(start + PAUSE_AFTER_INTERRUPT + INTERVAL), "the pause is over");
        // Interrupted again: twice the pause, then four times, up to MAX_PAUSE.
        let mut at = start + PAUSE_AFTER_INTERRUPT + INTERVAL;
        for expected in [2, 4, 8, 16, 16, 16] {
            schedule.interrupted(at);
            let pause = PAUSE_AFTER_INTERRUPT * expected;
            assert!(!schedule.due(at + pause - Duration::from_millis(1)), "paused for {pause:?}");
            assert!(schedule.due(at + pause));
            at += pause;
        }
        assert_eq!(PAUSE_AFTER_INTERRUPT * 16, MAX_PAUSE);
        schedule.completed();
        schedule.interrupted(at);
        assert!(schedule.due(at + PAUSE_AFTER_INTERRUPT), "a completed checkpoint resets the pause");
    }

    /// A watch over `connection` whose checkpoint has run for `running_for`.
    fn checkpointer_over(connection: &rusqlite::Connection, running_for: Duration) -> Checkpointer {
        let epoch = Instant::now().checked_sub(Duration::from_secs(10)).unwrap();
        let watch = Watch {
            epoch,
            running_since: AtomicU64::new(0),
            generation: AtomicU64::new(1),
            interrupt: connection.get_interrupt_handle(),
            idle_thread: OnceLock::new(),
            rescued: AtomicBool::new(false),
        };
        watch.running_since.store(watch.mark() - millis(running_for), Ordering::Release);
        Checkpointer { stop: mpsc::channel().0, watch: Arc::new(watch) }
    }

    #[cfg(target_os = "linux")]
    use super::super::write_thread::sched_stat::{SCHED_IDLE, SCHED_OTHER, policy_and_nice};

    /// Interrupts `connection`'s statement until `statement` ends (an interrupt that lands
    /// before the statement starts is cleared when it starts); at most 10 s.
    fn interrupt_until_done<T>(checkpointer: &Checkpointer, statement: &std::thread::JoinHandle<T>) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !statement.is_finished() {
            assert!(Instant::now() < deadline, "the statement still runs 10 s after being interrupted");
            checkpointer.watch.interrupt.interrupt();
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A statement that runs until it is interrupted stands in for a starved checkpoint, on a
    /// thread under `SCHED_IDLE`. A young one is left alone; one past `STUCK_AFTER` is moved
    /// to `SCHED_OTHER` at its nice value where the process may do that, and otherwise
    /// interrupted, and watched again until the interrupt took.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_checkpoint_starved_past_stuck_after_is_moved_to_normal_priority_or_interrupted() {
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        let stuck = checkpointer_over(&connection, STUCK_AFTER + Duration::from_millis(10));
        let (started, running) = mpsc::channel();
        let statement = std::thread::spawn(move || {
            let nice = at_least_process_nice(NICE);
            idle_at(nice).unwrap();
            started.send(IdleThread::current(nice)).unwrap();
            let endless = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n";
            connection.query_row(endless, [], |row| row.get::<_, i64>(0))
        });
        let idle_thread = running.recv().unwrap();
        assert_eq!(thread_policy(idle_thread.tid), (SCHED_IDLE, idle_thread.nice));

        // Not under the watch yet (a thread that could not enter SCHED_IDLE): left alone.
        stuck.rescue_if_stuck();
        assert_ne!(stuck.watch.running_since.load(Ordering::Acquire), 0);
        stuck.watch.idle_thread.set(idle_thread).unwrap();
        let young = Checkpointer { stop: mpsc::channel().0, watch: Arc::clone(&stuck.watch) };
        let since = young.watch.mark() - millis(STUCK_AFTER / 2);
        young.watch.running_since.store(since, Ordering::Release);
        young.rescue_if_stuck();
        assert_eq!(young.watch.running_since.load(Ordering::Acquire), since, "a young checkpoint is left alone");

        young.watch.running_since.store(since - millis(STUCK_AFTER), Ordering::Release);
        stuck.rescue_if_stuck();
        if sched_idle_is_reversible(idle_thread.nice) {
            assert_eq!(stuck.watch.running_since.load(Ordering::Acquire), 0, "rescued once");
            let deadline = Instant::now() + Duration::from_secs(5);
            while !stuck.watch.rescued.load(Ordering::Acquire) {
                assert!(Instant::now() < deadline, "no rescue within 5 s");
                std::thread::sleep(Duration::from_millis(5));
            }
            let moved = thread_policy(idle_thread.tid);
            assert_eq!(moved, (SCHED_OTHER, idle_thread.nice), "moved to SCHED_OTHER at its nice value");
            interrupt_until_done(&stuck, &statement);
        } else {
            // Interrupted, and watched again (the interrupt may have come before the statement
            // started): later rescues interrupt it again until it ends.
            let deadline = Instant::now() + Duration::from_secs(10);
            while !statement.is_finished() {
                assert!(Instant::now() < deadline, "the starved statement was not interrupted within 10 s");
                let rewatched = stuck.watch.running_since.load(Ordering::Acquire);
                if rewatched != 0 {
                    stuck.watch.running_since.store(rewatched - millis(STUCK_AFTER), Ordering::Release);
                    stuck.rescue_if_stuck();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(!stuck.watch.rescued.load(Ordering::Acquire));
        }
        let outcome = statement.join().unwrap();
        let code = outcome.as_ref().err().and_then(rusqlite::Error::sqlite_error_code);
        assert_eq!(code, Some(ErrorCode::OperationInterrupted), "{outcome:?}");
    }

    /// The scheduling policy and nice value of thread `tid`.
    #[cfg(target_os = "linux")]
    fn thread_policy(tid: rustix::thread::Pid) -> (u32, i32) {
        policy_and_nice(&format!("/proc/self/task/{}/stat", tid.as_raw_nonzero()))
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_checkpoint_thread_runs_under_sched_idle_where_it_may_leave_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("glassbox.db");
        let settings = super::super::SqliteSettings { path };
        let priority = super::super::WriterPriority { nice: 0, policy: super::super::WriterPolicy::Normal };
        let _backend = super::super::SqliteBackend::open_with_priority(settings, priority).await.unwrap();
        // Without the right to leave SCHED_IDLE again, the thread stays at nice 10.
        let nice = at_least_process_nice(NICE);
        let expected = if sched_idle_is_reversible(nice) { SCHED_IDLE } else { SCHED_OTHER };
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let policies = thread_policies("glassbox-wal-ch");
            if policies == [expected] {
                break;
            }
            assert!(Instant::now() < deadline, "the checkpoint threads' policies: {policies:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The scheduling policies (field 41 of `stat`) of this process's threads named `name`.
    #[cfg(target_os = "linux")]
    fn thread_policies(name: &str) -> Vec<u32> {
        let mut policies = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            policies.push(policy_and_nice(&task.path().join("stat").display().to_string()).0);
        }
        policies
    }
}
