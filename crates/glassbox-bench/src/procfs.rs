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
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| {
            let fields = stat_fields(*pid)?;
            // utime and stime are fields 14 and 15: indexes 11 and 12 after the command name.
            let utime: u64 = fields.get(11)?.parse().ok()?;
            let stime: u64 = fields.get(12)?.parse().ok()?;
            Some(utime + stime)
        })
        .sum()
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
        assert!(load_average()[0].is_finite());
    }
}
