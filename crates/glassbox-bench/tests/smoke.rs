//! Keeps the benchmark harness from rotting: `glassbox-bench run --smoke` against the debug
//! builds of `glassbox` and `glassbox-mockllm` (the floor and Glassbox with the full pipeline,
//! 2 s runs, ~12 s in all). It fails unless both targets answered every request and the
//! Markdown and JSON results were written with their figures. Needs `oha` (tests/run.sh
//! installs it) and the workspace's binaries built (`cargo nextest run --workspace` builds
//! them).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn oha() -> PathBuf {
    if Command::new("oha").arg("--version").output().is_ok_and(|o| o.status.success()) {
        return PathBuf::from("oha");
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let installed = home.join(".cargo/bin/oha");
    assert!(installed.exists(), "oha is not installed: `cargo install oha --locked` (tests/run.sh installs it)");
    installed
}

fn binary(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p glassbox-server -p glassbox-mockllm`",
        path.display()
    );
    path
}

#[test]
fn smoke_run_measures_floor_and_glassbox() {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_glassbox-bench"));
    let bin_dir = bench.parent().unwrap().to_path_buf();
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    let out = bin_dir.join("bench-smoke");
    let _ = std::fs::remove_dir_all(&out);
    let output = Command::new(&bench)
        .current_dir(&workspace)
        .args(["run", "--smoke"])
        .arg("--oha")
        .arg(oha())
        .arg("--glassbox")
        .arg(binary(&bin_dir, "glassbox"))
        .arg("--mockllm")
        .arg(binary(&bin_dir, "glassbox-mockllm"))
        .arg("--out")
        .arg(out.join("results"))
        .arg("--work")
        .arg(out.join("work"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "smoke run failed\nstdout:\n{stdout}\nstderr:\n{stderr}");

    let files: Vec<PathBuf> = std::fs::read_dir(out.join("results")).unwrap().map(|e| e.unwrap().path()).collect();
    let json_path = files.iter().find(|p| p.extension().is_some_and(|e| e == "json")).expect("a JSON result");
    assert!(files.iter().any(|p| p.extension().is_some_and(|e| e == "md")), "a Markdown result: {files:?}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json_path).unwrap()).unwrap();
    let targets = report["scenarios"][0]["targets"].as_array().unwrap();
    let names: Vec<&str> = targets.iter().map(|t| t["target"].as_str().unwrap()).collect();
    assert_eq!(names, ["glassbox", "floor"]);
    for target in targets {
        let closed = &target["closed"];
        assert!(closed["ok"].as_u64().unwrap() > 0 && closed["failed"].as_u64() == Some(0), "{target}");
        assert!(closed["p99_ms"].as_f64().unwrap() > 0.0, "{target}");
        assert!(target["cpu_ms_per_request_closed"].as_f64().unwrap() > 0.0, "CPU time was read: {target}");
        assert!(target["peak_rss_mb"].as_f64().unwrap() > 1.0, "VmHWM was read: {target}");
    }
    // Glassbox wrote its spans and usage rows to the store during the run.
    let telemetry = targets[0]["telemetry"].as_array().unwrap();
    let written = telemetry
        .iter()
        .find(|pair| pair[0].as_str().is_some_and(|n| n.starts_with("glassbox_telemetry_written_rows_total")));
    assert!(written.is_some_and(|pair| pair[1].as_f64().unwrap() > 0.0), "rows written: {telemetry:?}");
    assert!(stdout.contains("| floor (bare pass-through proxy) |"), "{stdout}");
    assert!(stdout.contains("throughput ≥ 70% of the floor"), "{stdout}");
    // The added-p99 aim comes from a round alternating the floor and Glassbox at the fixed rate.
    let tail = &report["scenarios"][0]["tail"];
    let added = tail["added_p99_ms"].as_array().unwrap();
    assert_eq!(added.len(), 1, "{tail}");
    assert!(added[0].as_f64().unwrap().is_finite(), "{tail}");
    assert!(tail["floor_p99_ms"][0].as_f64().unwrap() > 0.0, "{tail}");
    assert_eq!(tail["median_added_p99_ms"], added[0], "{tail}");
    assert!(stdout.contains("the median of 1 alternated round ("), "{stdout}");
}
