//! The report: Markdown tables (closed loop, fixed rate, the aims) and the JSON of
//! everything measured.

use std::fmt::Write as _;

use crate::run::{Report, ScenarioResult, TargetResult};
use crate::targets::Kind;

fn ms(value: f64) -> String {
    if value.is_finite() { format!("{value:.2}") } else { "–".to_owned() }
}

fn signed_ms(value: f64) -> String {
    if value.is_finite() { format!("{value:+.2}") } else { "–".to_owned() }
}

fn load(load: [f64; 3]) -> String {
    format!("{:.2}", load[0])
}

fn find(scenario: &ScenarioResult, kind: Kind) -> Option<&TargetResult> {
    scenario.targets.iter().find(|t| t.target == kind && t.skipped.is_none())
}

fn describe(scenario: &ScenarioResult) -> String {
    let s = scenario.scenario;
    if s.stream {
        format!("the mock waits {} ms, then streams the answer (server-sent events)", s.mock_latency_ms)
    } else if s.mock_latency_ms == 0 {
        "the mock answers at once, not streamed".to_owned()
    } else {
        format!("the mock waits {} ms, not streamed", s.mock_latency_ms)
    }
}

/// The whole report as Markdown.
pub fn markdown(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Run {} ({}): {} connections, {} s per measured run after {} s of warm-up; fixed rate = {:.0}% of Glassbox's closed-loop peak. \
         {} CPUs, load average {:.2} at start, {:.2} at end (the machine is shared: see each target's load average).\n",
        report.started_utc,
        if report.smoke { "smoke" } else { "full" },
        report.connections,
        report.seconds,
        report.warmup_seconds,
        report.rate_share * 100.0,
        report.machine.cpus,
        report.machine.load_average_start[0],
        report.machine.load_average_end[0],
    );
    let versions: Vec<String> = report.versions.iter().map(|(name, version)| format!("{name} {version}")).collect();
    let _ = writeln!(out, "Versions: {}.\n", versions.join(", "));
    for scenario in &report.scenarios {
        scenario_markdown(&mut out, scenario, report.connections);
    }
    if let Some(zero) = report.scenarios.iter().find(|s| s.scenario.name == "zero") {
        aims_markdown(&mut out, zero);
    }
    out
}

fn scenario_markdown(out: &mut String, scenario: &ScenarioResult, connections: u32) {
    let floor = find(scenario, Kind::Floor);
    let floor_closed = floor.and_then(|f| f.closed.as_ref());
    let floor_fixed = floor.and_then(|f| f.fixed.as_ref());
    let _ = writeln!(out, "### Scenario `{}`: {}\n", scenario.scenario.name, describe(scenario));
    let _ = writeln!(out, "Closed loop ({connections} connections):\n");
    let _ = writeln!(
        out,
        "| target | req/s | % of floor | p50 ms | p90 ms | p99 ms | p99.9 ms | CPU ms/req | peak RSS MB | failed | load avg |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for target in &scenario.targets {
        match (&target.skipped, &target.closed) {
            (Some(reason), _) => {
                let reason: String = reason.lines().next().unwrap_or("").chars().take(160).collect();
                let _ =
                    writeln!(out, "| {} | not measured: {} | | | | | | | | | |", target.name, reason.replace('|', "/"));
            }
            (None, Some(closed)) => {
                let share = floor_closed.map_or("–".to_owned(), |f| format!("{:.0}%", closed.rps / f.rps * 100.0));
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {} | {} | {} | {} | {} | {} | {} | {} | {}→{} |",
                    target.name,
                    closed.rps,
                    share,
                    ms(closed.p50_ms),
                    ms(closed.p90_ms),
                    ms(closed.p99_ms),
                    ms(closed.p999_ms),
                    target.cpu_ms_per_request_closed.map_or("–".to_owned(), |v| format!("{v:.3}")),
                    target.peak_rss_mb.map_or("–".to_owned(), |v| format!("{v:.1}")),
                    closed.failed,
                    load(target.load_average_start),
                    load(target.load_average_end),
                );
            }
            (None, None) => {}
        }
    }
    let rate = scenario.fixed_rate_rps.unwrap_or(f64::NAN);
    let _ = writeln!(out, "\nFixed rate ({rate:.0} req/s offered; added = target minus floor at the same rate):\n");
    let _ = writeln!(
        out,
        "| target | achieved req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | added p50 | added p90 | added p99 | added p99.9 | CPU ms/req | failed |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for target in &scenario.targets {
        let Some(fixed) = &target.fixed else { continue };
        let added = |pick: fn(&crate::load::Measured) -> f64| floor_fixed.map_or(f64::NAN, |f| pick(fixed) - pick(f));
        let held = if fixed.rps >= rate * 0.95 { "" } else { " (does not hold the rate)" };
        let _ = writeln!(
            out,
            "| {} | {:.0}{} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            target.name,
            fixed.rps,
            held,
            ms(fixed.p50_ms),
            ms(fixed.p90_ms),
            ms(fixed.p99_ms),
            ms(fixed.p999_ms),
            signed_ms(added(|m| m.p50_ms)),
            signed_ms(added(|m| m.p90_ms)),
            signed_ms(added(|m| m.p99_ms)),
            signed_ms(added(|m| m.p999_ms)),
            target.cpu_ms_per_request_fixed.map_or("–".to_owned(), |v| format!("{v:.3}")),
            fixed.failed,
        );
    }
    let failures: Vec<String> = scenario
        .targets
        .iter()
        .flat_map(|t| {
            t.closed
                .iter()
                .chain(t.fixed.iter())
                .filter(|m| !m.failures.is_empty())
                .map(move |m| format!("{}: {}", t.target.short(), m.failures.join(", ")))
        })
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\nFailures: {}", failures.join("; "));
    }
    for target in &scenario.targets {
        if !target.telemetry.is_empty() {
            let counters: Vec<String> =
                target.telemetry.iter().map(|(name, value)| format!("`{name}` {value}")).collect();
            let _ = writeln!(out, "\n{} telemetry after its runs: {}.", target.name, counters.join(", "));
        }
    }
    let _ = writeln!(out);
}

fn aims_markdown(out: &mut String, zero: &ScenarioResult) {
    let glassbox = find(zero, Kind::Glassbox);
    let floor = find(zero, Kind::Floor);
    let litellm = find(zero, Kind::LiteLlm);
    let closed_rps = |t: Option<&TargetResult>| t.and_then(|t| t.closed.as_ref()).map(|m| m.rps);
    let _ = writeln!(out, "### The issue's aims (scenario `zero`, everything on, 32 connections)\n");
    let _ = writeln!(out, "| aim | measured | verdict |");
    let _ = writeln!(out, "|---|---|---|");
    let share = closed_rps(glassbox).zip(closed_rps(floor)).map(|(g, f)| g / f);
    let _ = writeln!(
        out,
        "| throughput ≥ 70% of the floor | {} | {} |",
        share.map_or("–".to_owned(), |s| format!(
            "{:.0}% ({:.0} vs {:.0} req/s)",
            s * 100.0,
            closed_rps(glassbox).unwrap_or(0.0),
            closed_rps(floor).unwrap_or(0.0)
        )),
        verdict(share.map(|s| s >= 0.7))
    );
    let ratio = closed_rps(glassbox).zip(closed_rps(litellm)).map(|(g, l)| g / l);
    let _ = writeln!(
        out,
        "| throughput ≥ 10× LiteLLM's | {} | {} |",
        ratio.map_or("–".to_owned(), |r| format!("{r:.1}×")),
        verdict(ratio.map(|r| r >= 10.0))
    );
    let single_run = glassbox
        .and_then(|g| g.fixed.as_ref())
        .zip(floor.and_then(|f| f.fixed.as_ref()))
        .map(|(g, f)| g.p99_ms - f.p99_ms);
    // The alternated rounds, when they ran, give the figure: the median difference of the
    // rounds on a steady floor.
    let (measured, added_p99_verdict) = match &zero.tail {
        Some(tail) if !tail.added_p99_ms.is_empty() => {
            let judged = &tail.judged;
            let rounds: Vec<String> = tail.added_p99_ms.iter().map(|a| format!("{a:+.2}")).collect();
            let floors: Vec<String> = tail.floor_p99_ms.iter().map(|f| format!("{f:.2}")).collect();
            let counted = if judged.steady == rounds.len() {
                format!("the median of {} alternated round{}", rounds.len(), if rounds.len() == 1 { "" } else { "s" })
            } else {
                format!("the median of the {} of {} alternated rounds on a steady floor", judged.steady, rounds.len())
            };
            let text = format!(
                "{}, {counted} ({} ms; the floor's p99 {} ms){}",
                judged.median.map_or("–".to_owned(), |median| format!("{median:+.2} ms")),
                rounds.join(", "),
                floors.join(", "),
                single_run.map_or(String::new(), |a| format!("; the single runs above: {a:+.2} ms"))
            );
            (text, judged.verdict.clone())
        }
        _ => (single_run.map_or("–".to_owned(), |a| format!("{a:+.2} ms")), added_p99_verdict(single_run).to_owned()),
    };
    let _ = writeln!(
        out,
        "| added p99 < 1 ms at half of Glassbox's peak ({:.0} req/s) | {} | {} |",
        zero.fixed_rate_rps.unwrap_or(f64::NAN),
        measured,
        added_p99_verdict
    );
    let rss = glassbox.and_then(|g| g.peak_rss_mb);
    let _ = writeln!(
        out,
        "| peak RSS < 100 MB | {} | {} |",
        rss.map_or("–".to_owned(), |r| format!("{r:.1} MB")),
        verdict(rss.map(|r| r < 100.0))
    );
    let _ = writeln!(out);
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "**not met**",
        None => "not measured",
    }
}

/// A floor whose own p99 in a round is more than this many times the steadiest round's was
/// disturbed in that round.
const DISTURBED_FLOOR: f64 = 1.5;

/// Rounds on a steady floor the added-p99 figure needs, when some rounds were left out.
const MIN_STEADY_ROUNDS: usize = 3;

/// The alternated rounds' added p99, as the aim judges them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JudgedRounds {
    /// The median of the rounds that count; `None` when too few do.
    #[serde(rename = "median_added_p99_ms")]
    pub median: Option<f64>,
    /// How many rounds count.
    pub steady: usize,
    pub verdict: String,
}

/// Judges the rounds' differences (`added`) with their floors' own p99 (`floors`). A
/// difference taken against a disturbed floor shrinks by the disturbance, so a round whose
/// floor p99 is more than [`DISTURBED_FLOOR`] times the steadiest round's does not count (a run
/// of 2026-11-30 18:00 read "met", +0.49 ms, from floors of 0.83, 1.82 and 1.82 ms; the one
/// steady round said +1.18). The figure is the median of the rounds that count; with rounds
/// left out, at least [`MIN_STEADY_ROUNDS`] must remain, or there is no verdict. No verdict
/// either when the median is negative (the floor was slower in the tail than Glassbox at the
/// same rate: another process took the cores during its runs).
pub fn judge_rounds(added: &[f64], floors: &[f64]) -> JudgedRounds {
    let steadiest = floors.iter().copied().fold(f64::INFINITY, f64::min);
    let counted: Vec<f64> = added
        .iter()
        .zip(floors)
        .filter(|(_, floor)| **floor <= steadiest * DISTURBED_FLOOR)
        .map(|(added, _)| *added)
        .collect();
    let steady = counted.len();
    if steady < added.len() && steady < MIN_STEADY_ROUNDS {
        let highest = floors.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        return JudgedRounds {
            median: None,
            steady,
            verdict: format!(
                "inconclusive: the floor's own p99 ranged {steadiest:.2}–{highest:.2} ms across the rounds, and \
                 {steady} of {} rounds were on a steady floor (a noisy machine)",
                added.len()
            ),
        };
    }
    let median = crate::ab::median(counted);
    JudgedRounds { median: Some(median), steady, verdict: added_p99_verdict(Some(median)).to_owned() }
}

/// The verdict of one added-p99 figure (see [`judge_rounds`] for the rounds').
fn added_p99_verdict(added: Option<f64>) -> &'static str {
    match added {
        Some(added) if added < 0.0 => "inconclusive: the floor's own p99 at this rate was higher (a noisy run)",
        added => verdict(added.map(|a| a < 1.0)),
    }
}

#[cfg(test)]
mod tests {
    use super::{JudgedRounds, added_p99_verdict, judge_rounds, verdict};

    #[test]
    fn rounds_on_a_disturbed_floor_do_not_count() {
        // The run of 2026-11-30 18:00: one steady round of three, too few for a figure.
        let judged = judge_rounds(&[1.18, 0.49, 0.43], &[0.83, 1.82, 1.82]);
        assert_eq!(judged.median, None);
        assert_eq!(judged.steady, 1);
        assert_eq!(
            judged.verdict,
            "inconclusive: the floor's own p99 ranged 0.83–1.82 ms across the rounds, and 1 of 3 rounds were on \
             a steady floor (a noisy machine)"
        );
        // Four steady rounds of five: the disturbed one (its difference shrunk to +0.20) is left out.
        let judged = judge_rounds(&[1.10, 0.20, 0.90, 1.30, 1.00], &[0.90, 2.50, 1.00, 1.20, 0.95]);
        assert_eq!(judged, JudgedRounds { median: Some(1.05), steady: 4, verdict: verdict(Some(false)).to_owned() });
        // Every round steady: all count.
        let judged = judge_rounds(&[0.95, 0.90, 1.20], &[0.83, 1.08, 1.03]);
        assert_eq!(judged, JudgedRounds { median: Some(0.95), steady: 3, verdict: verdict(Some(true)).to_owned() });
        // One round (`--smoke`): it counts.
        assert_eq!(judge_rounds(&[0.7], &[2.0]).median, Some(0.7));
        // A negative median: the floor was the slower one.
        assert_eq!(
            judge_rounds(&[-0.2, -0.1, 0.1], &[0.9, 1.0, 0.95]).verdict,
            "inconclusive: the floor's own p99 at this rate was higher (a noisy run)"
        );
    }

    #[test]
    fn a_single_run_has_a_verdict_of_its_own() {
        assert_eq!(added_p99_verdict(Some(0.7)), verdict(Some(true)));
        assert_eq!(added_p99_verdict(Some(1.2)), verdict(Some(false)));
        assert_eq!(added_p99_verdict(None), verdict(None));
    }
}
