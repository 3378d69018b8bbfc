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
    // The alternated rounds, when they ran, give the figure: their median difference.
    let (added_p99, measured) = match &zero.tail {
        Some(tail) if !tail.added_p99_ms.is_empty() => {
            let rounds: Vec<String> = tail.added_p99_ms.iter().map(|a| format!("{a:+.2}")).collect();
            let floors: Vec<String> = tail.floor_p99_ms.iter().map(|f| format!("{f:.2}")).collect();
            let median = tail.median_added_p99_ms;
            let text = format!(
                "{median:+.2} ms, the median of {} alternated round{} ({} ms; the floor's p99 {} ms){}",
                rounds.len(),
                if rounds.len() == 1 { "" } else { "s" },
                rounds.join(", "),
                floors.join(", "),
                single_run.map_or(String::new(), |a| format!("; the single runs above: {a:+.2} ms"))
            );
            (Some(median), text)
        }
        _ => (single_run, single_run.map_or("–".to_owned(), |a| format!("{a:+.2} ms"))),
    };
    let floors = zero.tail.as_ref().map_or(&[][..], |tail| tail.floor_p99_ms.as_slice());
    let added_p99_verdict = added_p99_verdict(added_p99, floors);
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

/// The added-p99 aim's verdict. No verdict from a machine that moved under the rounds: a
/// floor slower in the tail than Glassbox at the same rate (another process took the cores
/// during its run), or a floor whose own p99 differs by more than half between rounds (a
/// difference against a disturbed floor shrinks by the disturbance, so the median would
/// then say "met" for a noisy machine, as a run of 2026-11-30 18:00 did).
fn added_p99_verdict(added: Option<f64>, floor_p99s: &[f64]) -> String {
    let lowest = floor_p99s.iter().copied().fold(f64::INFINITY, f64::min);
    let highest = floor_p99s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match added {
        Some(added) if added < 0.0 => {
            "inconclusive: the floor's own p99 at this rate was higher (a noisy run)".to_owned()
        }
        Some(_) if floor_p99s.len() > 1 && highest > lowest * 1.5 => format!(
            "inconclusive: the floor's own p99 ranged {lowest:.2}–{highest:.2} ms across the rounds (a noisy machine)"
        ),
        added => verdict(added.map(|a| a < 1.0)).to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::added_p99_verdict;

    #[test]
    fn the_added_p99_has_a_verdict_only_on_a_steady_floor() {
        assert_eq!(
            added_p99_verdict(Some(0.49), &[0.83, 1.82, 1.82]),
            "inconclusive: the floor's own p99 ranged 0.83–1.82 ms across the rounds (a noisy machine)"
        );
        assert_eq!(
            added_p99_verdict(Some(-0.2), &[0.9]),
            "inconclusive: the floor's own p99 at this rate was higher (a noisy run)"
        );
        assert_eq!(added_p99_verdict(Some(0.95), &[0.83, 1.08, 1.03]), super::verdict(Some(true)));
        assert_eq!(added_p99_verdict(Some(1.19), &[1.03, 1.08, 1.03]), super::verdict(Some(false)));
        assert_eq!(added_p99_verdict(Some(0.7), &[]), super::verdict(Some(true)), "a single run: no rounds to compare");
        assert_eq!(added_p99_verdict(None, &[]), super::verdict(None));
    }
}
