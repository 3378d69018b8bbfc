//! The text parsers behind suite, dataset and recordings files (also the fuzz targets'
//! entry points): what they accept round-trips, and what they reject is named by file and line.

use std::path::Path;

use glassbox_evals::Suite;
use glassbox_evals::recording::{RecordingsError, entries_to_jsonl, parse_entries};
use glassbox_evals::suite::{Case, SuiteError, parse_dataset};

fn repo_file(relative: &str) -> (std::path::PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    (path, text)
}

#[test]
fn shipped_recordings_are_written_back_byte_for_byte() {
    for name in ["assistant", "extractor", "researcher"] {
        let (path, text) = repo_file(&format!("evals/{name}.recordings.jsonl"));
        let entries = parse_entries(&text, &path).unwrap();
        assert!(!entries.is_empty(), "{name}");
        assert_eq!(entries_to_jsonl(&entries).unwrap(), text, "{name}: parse then write changes the file");
    }
}

#[test]
fn a_bad_recording_line_is_named() {
    let text = "\n{\"kind\": \"tool\"}\n";
    match parse_entries(text, Path::new("r.jsonl")) {
        Err(error @ RecordingsError::Parse { line: 2, .. }) => assert!(error.to_string().starts_with("r.jsonl:2:")),
        other => panic!("expected a parse error on line 2, got {other:?}"),
    }
}

#[test]
fn datasets_parse_with_line_numbers_in_errors() {
    let (path, text) = repo_file("evals/assistant.jsonl");
    let cases = parse_dataset(&text, &path).unwrap();
    assert!(cases.len() > 1);
    let text = "{\"input\": \"a\"}\n\n{\"input\": 3}\n";
    match parse_dataset(text, Path::new("d.jsonl")) {
        Err(SuiteError::Invalid { path, message }) => {
            assert_eq!(path, "d.jsonl");
            assert!(message.starts_with("line 3: "), "{message}");
        }
        other => panic!("expected an invalid dataset, got {other:?}"),
    }
}

#[test]
fn suites_parse_without_touching_the_disk() {
    let (path, text) = repo_file("evals/assistant.toml");
    let mut asked_for = None;
    let suite = Suite::parse(&path, &text, |dataset| {
        asked_for = Some(dataset.to_owned());
        Ok(vec![Case { id: "c".into(), input: "hi".into(), expected: None, metadata: serde_json::Value::Null }])
    })
    .unwrap();
    assert_eq!(asked_for.as_deref(), Some(suite.dataset_path.as_path()));
    assert_eq!(suite.cases.len(), 1);
    assert!(!suite.scorers.is_empty());
}

/// Found by the `eval_suite` fuzz target (its property had assumed every dataset lands next to
/// the suite): a relative dataset and recordings path is resolved next to the suite file, an
/// absolute one is used as written.
#[test]
fn suite_paths_are_relative_to_the_suite_unless_absolute() {
    let case = || vec![Case { id: "c".into(), input: "hi".into(), expected: None, metadata: serde_json::Value::Null }];
    let parse = |text: &str| {
        Suite::parse(Path::new("evals/s.toml"), text, |_| Ok(case()))
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    };
    let scorer = "[[scorers]]\ntype = \"tokens\"\nmax_tokens = 10\n";

    let relative = parse(&format!("target = {{ agent = \"a\" }}\ndataset = \"data/a.jsonl\"\n{scorer}"));
    assert_eq!(relative.dataset_path, Path::new("evals/data/a.jsonl"));
    assert_eq!(relative.recordings_path, Path::new("evals/data/a.recordings.jsonl"));

    let absolute = parse(&format!(
        "target = {{ agent = \"a\" }}\ndataset = \"/srv/evals/a.jsonl\"\nrecordings = \"/srv/rec/a.jsonl\"\n{scorer}"
    ));
    assert_eq!(absolute.dataset_path, Path::new("/srv/evals/a.jsonl"));
    assert_eq!(absolute.recordings_path, Path::new("/srv/rec/a.jsonl"));

    let absolute_dataset = parse(&format!("target = {{ agent = \"a\" }}\ndataset = \"/srv/evals/a.jsonl\"\n{scorer}"));
    assert_eq!(absolute_dataset.recordings_path, Path::new("/srv/evals/a.recordings.jsonl"));
}
