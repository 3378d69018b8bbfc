//! JSONL eval datasets (`glassbox_evals::suite::parse_dataset`) on arbitrary text.
//!
//! Beyond "no panic": an accepted dataset has unique ids and every case's input converts to
//! messages; writing its cases back as rows (with their ids) and parsing that gives the same
//! cases. A rejected dataset's error names a line of the file (or says it has no cases).

#![no_main]

use std::path::Path;

use glassbox_evals::suite::{SuiteError, parse_dataset};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("fuzz.jsonl");
    match parse_dataset(text, path) {
        Ok(cases) => {
            let mut ids: Vec<&str> = cases.iter().map(|case| case.id.as_str()).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), cases.len(), "ids are unique");
            let mut rows = String::new();
            for case in &cases {
                assert!(case.messages().is_ok(), "an accepted case converts to messages");
                let mut row = Map::new();
                row.insert("id".into(), Value::String(case.id.clone()));
                row.insert("input".into(), case.input.clone());
                if let Some(expected) = &case.expected {
                    row.insert("expected".into(), expected.clone());
                }
                row.insert("metadata".into(), case.metadata.clone());
                rows.push_str(&Value::Object(row).to_string());
                rows.push('\n');
            }
            let reparsed = parse_dataset(&rows, path).expect("written cases parse again");
            assert_eq!(reparsed, cases, "parse, write, parse gives the same cases");
        }
        Err(SuiteError::Invalid { path, message }) => {
            assert_eq!(path, "fuzz.jsonl");
            let n_lines = text.lines().count();
            match message.strip_prefix("line ") {
                Some(rest) => {
                    let line: usize = rest.split(':').next().and_then(|n| n.parse().ok()).expect("a line number");
                    assert!((1..=n_lines).contains(&line), "line {line} of {n_lines}: {message}");
                }
                None => assert_eq!(message, "the dataset has no cases"),
            }
        }
        Err(other) => panic!("parsing text never reads a file: {other}"),
    }
});
