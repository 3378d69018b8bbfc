//! The load: oha, run once per measurement with the same flags for every target, its JSON
//! summary read back.
//!
//! Closed loop: `-c 32 -z DURATION -w` (32 connections, each sends its next request when the
//! last answered; requests in flight at the deadline are waited for, not counted as errors).
//! Fixed rate: the same plus `-q RATE --latency-correction`, so a target that falls behind is
//! charged the time its requests waited to be sent (no coordinated omission).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

/// One request shape, sent over and over.
#[derive(Debug, Clone)]
pub struct Request {
    pub url: String,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

/// What one oha run measured. Latencies in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// `None` for the closed loop.
    pub offered_rps: Option<f64>,
    pub seconds: f64,
    /// Answers with a 2xx status per second.
    pub rps: f64,
    pub ok: u64,
    /// Non-2xx answers plus connection errors.
    pub failed: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Status codes and error messages seen, when any was not a 2xx.
    pub failures: Vec<String>,
}

/// Runs oha against `request` with `connections` connections for `duration`, at `rate`
/// requests per second when given.
pub fn run(
    oha: &Path,
    request: &Request,
    connections: u32,
    duration: Duration,
    rate: Option<f64>,
) -> anyhow::Result<Measured> {
    let mut command = Command::new(oha);
    command
        .arg("--no-tui")
        .args(["--output-format", "json"])
        .args(["-c", &connections.to_string()])
        .args(["-z", &format!("{}ms", duration.as_millis())])
        .arg("-w")
        .args(["-m", "POST"])
        .args(["-T", "application/json"])
        .args(["-d", &request.body]);
    for (name, value) in &request.headers {
        command.args(["-H", &format!("{name}: {value}")]);
    }
    if let Some(rate) = rate {
        command.args(["-q", &format!("{rate:.1}")]).arg("--latency-correction");
    }
    command.arg(&request.url);
    let output = command.output().with_context(|| format!("while running {}", oha.display()))?;
    if !output.status.success() {
        anyhow::bail!("oha failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    let summary: Value = serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "oha printed no JSON: {}",
            String::from_utf8_lossy(&output.stdout).chars().take(300).collect::<String>()
        )
    })?;
    Ok(parse(&summary, rate))
}

fn parse(summary: &Value, rate: Option<f64>) -> Measured {
    let seconds = summary.pointer("/summary/total").and_then(Value::as_f64).unwrap_or(f64::NAN);
    let mut ok = 0;
    let mut failed = 0;
    let mut failures = Vec::new();
    if let Some(codes) = summary.get("statusCodeDistribution").and_then(Value::as_object) {
        for (code, count) in codes {
            let count = count.as_u64().unwrap_or(0);
            if code.starts_with('2') {
                ok += count;
            } else {
                failed += count;
                failures.push(format!("{count}× status {code}"));
            }
        }
    }
    if let Some(errors) = summary.get("errorDistribution").and_then(Value::as_object) {
        for (error, count) in errors {
            let count = count.as_u64().unwrap_or(0);
            failed += count;
            failures.push(format!("{count}× {error}"));
        }
    }
    let percentile_ms = |key: &str| {
        summary
            .get("latencyPercentiles")
            .and_then(|p| p.get(key))
            .and_then(Value::as_f64)
            .map_or(f64::NAN, |seconds| seconds * 1e3)
    };
    Measured {
        offered_rps: rate,
        seconds,
        rps: ok as f64 / seconds,
        ok,
        failed,
        p50_ms: percentile_ms("p50"),
        p90_ms: percentile_ms("p90"),
        p99_ms: percentile_ms("p99"),
        p999_ms: percentile_ms("p99.9"),
        max_ms: summary.pointer("/summary/slowest").and_then(Value::as_f64).map_or(f64::NAN, |seconds| seconds * 1e3),
        failures,
    }
}

/// `oha --version`, for the record.
pub fn version(oha: &Path) -> String {
    Command::new(oha)
        .arg("--version")
        .output()
        .ok()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oha_json() {
        let summary = serde_json::json!({
            "summary": {"successRate": 1.0, "total": 2.0, "slowest": 0.01, "fastest": 0.0001, "average": 0.001, "requestsPerSec": 1001.0},
            "latencyPercentiles": {"p10": 0.0005, "p50": 0.001, "p90": 0.002, "p99": 0.004, "p99.9": 0.008, "p99.99": 0.009},
            "statusCodeDistribution": {"200": 2000, "502": 2},
            "errorDistribution": {"connection closed": 1}
        });
        let measured = parse(&summary, Some(1000.0));
        assert_eq!((measured.ok, measured.failed), (2000, 3));
        assert!((measured.rps - 1000.0).abs() < 1e-9);
        assert!((measured.p999_ms - 8.0).abs() < 1e-9);
        assert!((measured.max_ms - 10.0).abs() < 1e-9);
        assert_eq!(measured.failures, vec!["2× status 502".to_owned(), "1× connection closed".to_owned()]);
    }
}
