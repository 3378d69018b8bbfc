//! Eval suite files (`evals/*.toml`, `glassbox_evals::Suite::parse`) on arbitrary text, with a
//! fixed one-case dataset.
//!
//! Beyond "no panic": an accepted suite keeps the documented bounds (at least one scorer, with
//! unique names; concurrency 1..=1024; gate fractions in 0..=1; timeouts of at least 1 ms) and
//! its relative paths are resolved next to the suite file, its absolute ones kept; a rejected one names the file.

#![no_main]

use std::path::Path;

use glassbox_evals::Suite;
use glassbox_evals::suite::{Case, SuiteError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let suite_path = Path::new("evals/fuzz.toml");
    let dataset = |_: &Path| {
        Ok(vec![Case { id: "c1".into(), input: "hello".into(), expected: None, metadata: serde_json::Value::Null }])
    };
    match Suite::parse(suite_path, text, dataset) {
        Ok(suite) => {
            assert!(!suite.scorers.is_empty());
            assert!((1..=1024).contains(&suite.concurrency));
            assert!((0.0..=1.0).contains(&suite.gate.min_pass_rate));
            assert!(suite.gate.max_drop.is_none_or(|drop| (0.0..=1.0).contains(&drop)));
            assert!(!suite.case_timeout.is_zero() && !suite.scorer_timeout.is_zero());
            let mut names: Vec<String> = suite
                .scorers
                .iter()
                .map(|spec| spec.name.clone().unwrap_or_else(|| spec.type_name().to_owned()))
                .collect();
            names.sort();
            let n_names = names.len();
            names.dedup();
            assert_eq!(names.len(), n_names, "scorer names are unique");
            // A relative dataset path is resolved next to the suite file; an absolute one is
            // kept as written (a crash this target found when it assumed every path relative).
            assert!(
                suite.dataset_path.starts_with("evals") || suite.dataset_path.is_absolute(),
                "{}",
                suite.dataset_path.display()
            );
        }
        Err(SuiteError::Invalid { path, message }) => {
            assert_eq!(path, "evals/fuzz.toml");
            assert!(!message.trim().is_empty());
        }
        Err(other) => panic!("parsing text never reads a file: {other}"),
    }
});
