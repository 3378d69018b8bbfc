//! The report of one suite run and its renderings: JSON (which reads back into the same
//! [`Report`], so a report can be a later run's baseline), JUnit XML for CI test views, a
//! Markdown summary for pull-request comments, and a plain-text table per scorer.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Bumped when a field changes meaning; readers refuse other versions.
pub const REPORT_FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: u32,
    pub run_id: String,
    pub suite: String,
    /// `agent assistant`.
    pub target: String,
    /// `replay`, `record` or `live`.
    pub mode: String,
    pub started_at_unix_ms: u64,
    pub duration_ms: f64,
    pub total: usize,
    pub passed: usize,
    pub failed: usize,
    /// Cases whose run failed (provider error, missing recording, timeout), part of `failed`.
    pub errored: usize,
    pub pass_rate: f64,
    pub scorers: Vec<ScorerSummary>,
    pub gate: GateOutcome,
    pub cases: Vec<CaseReport>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScorerSummary {
    pub name: String,
    pub kind: String,
    pub threshold: f64,
    pub min_pass_rate: Option<f64>,
    pub passed: usize,
    pub failed: usize,
    pub errored: usize,
    pub pass_rate: f64,
    /// Mean score over the cases it scored; `None` when it scored none.
    pub mean_score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    pub passed: bool,
    pub min_pass_rate: f64,
    pub max_drop: Option<f64>,
    pub baseline: Option<String>,
    /// One sentence per unmet criterion.
    pub failures: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseReport {
    pub id: String,
    pub input: String,
    pub output: String,
    pub expected: Option<Value>,
    pub passed: bool,
    /// Why the run itself failed, when it did.
    pub error: Option<String>,
    pub latency_ms: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost_usd: Option<f64>,
    pub tool_calls: Vec<String>,
    pub scores: Vec<CaseScore>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseScore {
    pub scorer: String,
    pub value: Option<f64>,
    pub passed: bool,
    pub reason: String,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("could not read report {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a Glassbox eval report")]
    Parse {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path} has no report of suite {suite}")]
    NoSuite { path: String, suite: String },
    #[error("{path} is a report of format {found}; this version reads format {REPORT_FORMAT}")]
    Format { path: String, found: u32 },
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn from_json(text: &str, origin: &str) -> Result<Self, ReportError> {
        let report: Self =
            serde_json::from_str(text).map_err(|source| ReportError::Parse { path: origin.to_owned(), source })?;
        if report.format != REPORT_FORMAT {
            return Err(ReportError::Format { path: origin.to_owned(), found: report.format });
        }
        Ok(report)
    }

    pub fn load(path: &std::path::Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ReportError::Read { path: path.display().to_string(), source })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// The report of `suite` in a JSON file holding one report or an array of them (what
    /// `--json` writes for several suites).
    pub fn load_for_suite(path: &std::path::Path, suite: &str) -> Result<Self, ReportError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Read { path: origin.clone(), source })?;
        if text.trim_start().starts_with('[') {
            let reports: Vec<Value> =
                serde_json::from_str(&text).map_err(|source| ReportError::Parse { path: origin.clone(), source })?;
            let found = reports.into_iter().find(|report| report.get("suite").and_then(Value::as_str) == Some(suite));
            let Some(found) = found else { return Err(ReportError::NoSuite { path: origin, suite: suite.to_owned() }) };
            return Self::from_json(&found.to_string(), &origin);
        }
        Self::from_json(&text, &origin)
    }

    /// Why one case failed, in a few lines: the run's error, or each failing scorer's reason.
    pub fn failure_text(case: &CaseReport) -> String {
        if let Some(error) = &case.error {
            return format!("run failed: {error}");
        }
        case.scores
            .iter()
            .filter(|score| !score.passed)
            .map(|score| match score.value {
                Some(value) => format!("{} ({value:.3}): {}", score.scorer, score.reason),
                None => format!("{} (error): {}", score.scorer, score.reason),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// The per-scorer table, for a terminal.
pub fn summary_table(report: &Report) -> String {
    let header = ["scorer", "threshold", "passed", "failed", "errored", "pass rate", "mean"];
    let mut rows: Vec<[String; 7]> = report
        .scorers
        .iter()
        .map(|scorer| {
            [
                scorer.name.clone(),
                format!("{:.2}", scorer.threshold),
                scorer.passed.to_string(),
                scorer.failed.to_string(),
                scorer.errored.to_string(),
                percent(scorer.pass_rate),
                scorer.mean_score.map_or_else(|| String::from("-"), |mean| format!("{mean:.3}")),
            ]
        })
        .collect();
    rows.push([
        String::from("(all scorers)"),
        String::new(),
        report.passed.to_string(),
        report.failed.to_string(),
        report.errored.to_string(),
        percent(report.pass_rate),
        String::new(),
    ]);
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[&str], out: &mut String| {
        for (idx, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if idx == 0 {
                let _ = write!(out, "{cell:<width$}");
            } else {
                let _ = write!(out, "  {cell:>width$}");
            }
        }
        out.push('\n');
    };
    line(&header, &mut out);
    for row in &rows {
        line(&row.iter().map(String::as_str).collect::<Vec<_>>(), &mut out);
    }
    out
}

/// A Markdown summary of several suite runs, for a pull-request comment.
pub fn markdown(reports: &[Report]) -> String {
    let mut out = String::from("# Glassbox evals\n\n| suite | target | cases | passed | pass rate | gate |\n|---|---|---:|---:|---:|---|\n");
    for report in reports {
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            report.suite,
            report.target,
            report.total,
            report.passed,
            percent(report.pass_rate),
            if report.gate.passed { "✅ passed" } else { "❌ failed" }
        );
    }
    for report in reports {
        let _ = write!(out, "\n## `{}` ({}, {})\n\n", report.suite, report.target, report.mode);
        for failure in &report.gate.failures {
            let _ = writeln!(out, "- ❌ {}", escape_markdown(failure));
        }
        out.push_str("\n| scorer | threshold | passed | failed | errored | pass rate | mean |\n|---|---:|---:|---:|---:|---:|---:|\n");
        for scorer in &report.scorers {
            let _ = writeln!(
                out,
                "| `{}` | {:.2} | {} | {} | {} | {} | {} |",
                scorer.name,
                scorer.threshold,
                scorer.passed,
                scorer.failed,
                scorer.errored,
                percent(scorer.pass_rate),
                scorer.mean_score.map_or_else(|| String::from("-"), |mean| format!("{mean:.3}"))
            );
        }
        let failed: Vec<&CaseReport> = report.cases.iter().filter(|case| !case.passed).collect();
        if !failed.is_empty() {
            let _ = write!(out, "\n<details><summary>{} failed case(s)</summary>\n\n", failed.len());
            for case in failed {
                let _ = write!(out, "**`{}`** — input: {}\n\n```diff\n{}\n```\n\n", case.id, escape_markdown(&case.input), Report::failure_text(case).replace("```", "'''"));
            }
            out.push_str("</details>\n");
        }
    }
    out
}

fn escape_markdown(text: &str) -> String {
    let one_line: String = text.chars().map(|c| if c == '\n' { ' ' } else { c }).collect();
    one_line.replace('|', "\\|").replace('<', "&lt;")
}

/// JUnit XML of several suite runs: one `<testsuite>` per suite, one `<testcase>` per case.
/// The layout is the one Jenkins, GitLab and the GitHub test reporters read (the schema is in
/// `tests/junit/junit.xsd`): a failing scorer is a `<failure>`, a run that failed is an
/// `<error>`.
pub fn junit(reports: &[Report]) -> String {
    let tests: usize = reports.iter().map(|report| report.total).sum();
    let errors: usize = reports.iter().map(|report| report.errored).sum();
    let failures: usize = reports.iter().map(|report| report.failed - report.errored).sum();
    let time: f64 = reports.iter().map(|report| report.duration_ms).sum::<f64>() / 1000.0;
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"glassbox evals\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{time:.3}\">"
    );
    for (idx, report) in reports.iter().enumerate() {
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" package=\"glassbox.evals\" id=\"{idx}\" timestamp=\"{}\" hostname=\"localhost\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{:.3}\">",
            xml(&report.suite),
            iso_timestamp(report.started_at_unix_ms),
            report.total,
            report.failed - report.errored,
            report.errored,
            report.duration_ms / 1000.0
        );
        out.push_str("    <properties>\n");
        for (name, value) in [("target", report.target.as_str()), ("mode", report.mode.as_str()), ("run_id", report.run_id.as_str())] {
            let _ = writeln!(out, "      <property name=\"{name}\" value=\"{}\"/>", xml(value));
        }
        out.push_str("    </properties>\n");
        for case in &report.cases {
            let _ = write!(
                out,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.3}\"",
                xml(&case.id),
                xml(&report.suite),
                case.latency_ms / 1000.0
            );
            if case.passed {
                out.push_str("/>\n");
                continue;
            }
            out.push_str(">\n");
            let text = Report::failure_text(case);
            let (element, kind, message) = match &case.error {
                Some(error) => ("error", "run_error", first_line(error)),
                None => {
                    let failing: Vec<&str> =
                        case.scores.iter().filter(|score| !score.passed).map(|score| score.scorer.as_str()).collect();
                    ("failure", "scorer", format!("failed: {}", failing.join(", ")))
                }
            };
            let _ = writeln!(out, "      <{element} message=\"{}\" type=\"{kind}\">{}</{element}>", xml(&message), xml(&text));
            out.push_str("    </testcase>\n");
        }
        let _ = writeln!(
            out,
            "    <system-out>{}</system-out>\n    <system-err></system-err>\n  </testsuite>",
            xml(&summary_table(report))
        );
    }
    out.push_str("</testsuites>\n");
    out
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// Escapes text for XML attributes and content, dropping characters XML 1.0 cannot carry.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC, the timestamp form the JUnit schema takes (no zone).
pub fn iso_timestamp(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_civil_utc() {
        assert_eq!(iso_timestamp(0), "1970-01-01T00:00:00");
        assert_eq!(iso_timestamp(1_709_210_096_000), "2024-02-29T12:34:56");
    }

    #[test]
    fn xml_escapes_markup_and_drops_control_characters() {
        assert_eq!(xml("a<b & \"c\"\u{1}"), "a&lt;b &amp; &quot;c&quot;");
    }
}
