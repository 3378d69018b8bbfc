//! Recordings files (`*.recordings.jsonl`, `glassbox_evals::recording::parse_entries`) on
//! arbitrary text.
//!
//! Beyond "no panic": accepted entries written back (`entries_to_jsonl`) parse to the same
//! entries, and the lookup table builds from them; a rejected file's error gives a line of the
//! file that is not blank.

#![no_main]

use std::path::Path;

use glassbox_evals::recording::{Recordings, RecordingsError, entries_to_jsonl, parse_entries};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("fuzz.recordings.jsonl");
    match parse_entries(text, path) {
        Ok(entries) => {
            let written = entries_to_jsonl(&entries).expect("parsed entries serialize");
            let reparsed = parse_entries(&written, path).expect("written entries parse again");
            assert_eq!(reparsed, entries, "parse, write, parse gives the same entries");
            let recordings = Recordings::from_entries(entries);
            assert!(recordings.len() <= reparsed.len());
        }
        Err(RecordingsError::Parse { line, .. }) => {
            let source_line = text.lines().nth(line.wrapping_sub(1)).expect("the error's line is in the file");
            assert!(!source_line.trim().is_empty(), "blank lines are skipped, never blamed");
        }
        Err(other) => panic!("parsing text never reads or writes a file: {other}"),
    }
});
