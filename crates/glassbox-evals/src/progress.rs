//! Progress of a suite run on stderr: a progress bar on a terminal, plain lines elsewhere
//! (CI logs), where a bar's redraws would be noise.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::{CaseReport, Report};
use crate::runner::Progress;

/// A bar when stderr is a terminal and `CI` is unset, else a line per failed case and one
/// every tenth of the cases.
pub struct ConsoleProgress {
    bar: Mutex<Option<ProgressBar>>,
    interactive: bool,
    suite: Mutex<String>,
    total: AtomicUsize,
    done: AtomicUsize,
    failed: AtomicUsize,
}

impl ConsoleProgress {
    pub fn new() -> Self {
        let interactive = std::io::stderr().is_terminal() && std::env::var_os("CI").is_none();
        Self::with_interactive(interactive)
    }

    pub fn with_interactive(interactive: bool) -> Self {
        Self {
            bar: Mutex::new(None),
            interactive,
            suite: Mutex::new(String::new()),
            total: AtomicUsize::new(0),
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        }
    }
}

impl Default for ConsoleProgress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for ConsoleProgress {
    fn start(&self, suite: &str, total: usize) {
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.failed.store(0, Ordering::Relaxed);
        if let Ok(mut name) = self.suite.lock() {
            *name = suite.to_owned();
        }
        if self.interactive {
            let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(suite.to_owned());
            if let Ok(mut slot) = self.bar.lock() {
                *slot = Some(bar);
            }
        } else {
            eprintln!("eval {suite}: {total} cases");
        }
    }

    fn case_done(&self, case: &CaseReport) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let failed = self.failed.fetch_add(usize::from(!case.passed), Ordering::Relaxed) + usize::from(!case.passed);
        let total = self.total.load(Ordering::Relaxed);
        if self.interactive {
            if let Ok(slot) = self.bar.lock()
                && let Some(bar) = slot.as_ref()
            {
                bar.inc(1);
                if failed > 0 {
                    bar.set_message(format!("{failed} failed"));
                }
            }
            return;
        }
        let suite = self.suite.lock().map(|name| name.clone()).unwrap_or_default();
        if !case.passed {
            eprintln!("eval {suite}: case {} FAILED", case.id);
        }
        let step = (total / 10).max(1);
        if done.is_multiple_of(step) || done == total {
            eprintln!("eval {suite}: {done}/{total} cases done, {failed} failed");
        }
    }

    fn finish(&self, _report: &Report) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }
}
