//! What a target costs the machine, read from `/proc`: CPU time (utime + stime of
//! `/proc/<pid>/stat`) and peak resident memory (`VmHWM` of `/proc/<pid>/status`), summed over
//! the target's process tree (LiteLLM and Mastra run several processes), and the load average.

use std::collections::HashMap;

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`; 100 on Linux).
pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// The fields of `/proc/<pid>/stat` after the command name (which may hold spaces).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// `root` and every process descending from it.
pub fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
            // Field 4 of stat is the parent; index 1 after the command name.
            if let Some(parent) = stat_fields(pid).and_then(|fields| fields.get(1)?.parse::<u32>().ok()) {
                children.entry(parent).or_default().push(pid);
            }
        }
    }
    let mut all = vec![root];
    let mut next = 0;
    while next < all.len() {
        if let Some(kids) = children.get(&all[next]) {
            all.extend(kids.iter().copied());
        }
        next += 1;
    }
    all
}

/// utime + stime of the processes, in clock ticks.
#[cfg(test)]
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|pid| own_and_reaped_ticks(*pid).map(|(own, _)| own)).sum()
}

/// The CPU time of the tree under `root` as it is now (listed again, so a process started
/// since counts), in clock ticks: each process's utime + stime and its cutime + cstime, the
/// time of the children it has reaped. A worker that exits (LiteLLM's and Mastra's can) moves
/// its time into its parent's, so the sum only grows while the tree reaps its own children.
pub fn tree_cpu_ticks(root: u32) -> u64 {
    tree(root).iter().filter_map(|pid| own_and_reaped_ticks(*pid).map(|(own, reaped)| own + reaped)).sum()
}

/// The CPU time used by the tree under `root` while `during` ran, in milliseconds; `None` when
/// the tree's total went down (a process left it with its time: one re-parented outside it),
/// which no figure can be made of.
pub fn tree_cpu_ms<T>(root: u32, ticks_per_second: f64, during: impl FnOnce() -> T) -> (T, Option<f64>) {
    let before = tree_cpu_ticks(root);
    let result = during();
    let after = tree_cpu_ticks(root);
    let used = after.checked_sub(before).map(|ticks| ticks as f64 / ticks_per_second * 1e3);
    (result, used)
}

/// (utime + stime, cutime + cstime) of one process, in clock ticks.
fn own_and_reaped_ticks(pid: u32) -> Option<(u64, u64)> {
    let fields = stat_fields(pid)?;
    // utime, stime, cutime and cstime are fields 14 to 17: indexes 11 to 14 after the
    // command name.
    let field = |index: usize| fields.get(index)?.parse::<u64>().ok();
    Some((field(11)? + field(12)?, field(13)? + field(14)?))
}

/// Sum of the processes' peak resident set sizes (`VmHWM`), in KiB.
pub fn peak_rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut values = text.split_whitespace().map(|value| value.parse::<f64>().unwrap_or(f64::NAN));
    [values.next().unwrap_or(f64::NAN), values.next().unwrap_or(f64::NAN), values.next().unwrap_or(f64::NAN)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(tree(me).contains(&me));
        assert!(peak_rss_kib(&[me]) > 0, "VmHWM of this process");
        // Spin until the kernel has charged this process a tick (on a loaded machine 50 ms of
        // wall time may not be), for at most ten seconds.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while cpu_ticks(&[me]) == 0 && std::time::Instant::now() < deadline {
            std::hint::black_box((0..100_000u64).sum::<u64>());
        }
        assert!(cpu_ticks(&[me]) > 0, "this process has used CPU");
        assert!(tree_cpu_ticks(me) >= cpu_ticks(&[me]), "the tree's time includes this process's");
        assert!(load_average()[0].is_finite());
    }

    #[test]
    fn a_child_that_exits_keeps_its_time_in_the_tree() {
        let me = std::process::id();
        let ticks = clock_ticks_per_second();
        // A child that burns CPU for a few tenths of a second, then exits and is reaped here.
        let script = "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done";
        let own_before = cpu_ticks(&[me]);
        let (status, used) = tree_cpu_ms(me, ticks, || std::process::Command::new("sh").args(["-c", script]).status());
        let own_used = (cpu_ticks(&[me]) - own_before) as f64 / ticks * 1e3;
        assert!(status.map(|status| status.success()).unwrap_or(false), "the burner ran");
        let used = used.expect("the tree's CPU time did not go down");
        assert!(
            used > own_used,
            "the exited child's time is counted: {used} ms in all, {own_used} ms this process's own"
        );
    }
}
