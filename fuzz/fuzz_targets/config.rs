//! `glassbox.toml` parsing and validation (`glassbox_config::parse`) on arbitrary text.
//!
//! Beyond "no panic": parsing is deterministic, and a rejected file always lists at least one
//! problem, each with a position inside the file (1-based line and column, the column at most
//! one past the end of its line), a non-empty message, sorted by position.

#![no_main]

use glassbox_config::ConfigError;
use libfuzzer_sys::fuzz_target;

/// A fixed environment so runs are reproducible: some names are set, the others are not, so
/// both `${VAR}` and `${VAR:-default}` paths are reached.
fn env(name: &str) -> Option<String> {
    match name.len() % 3 {
        0 => None,
        1 => Some(String::new()),
        _ => Some(format!("value-of-{name}")),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let first = glassbox_config::parse(source, "fuzz.toml", &env);
    let again = glassbox_config::parse(source, "fuzz.toml", &env);
    match (&first, &again) {
        (Ok(config), Ok(config_again)) => assert_eq!(config, config_again, "parsing is deterministic"),
        (Err(ConfigError::Invalid(problems)), Err(ConfigError::Invalid(problems_again))) => {
            assert_eq!(problems, problems_again, "diagnostics are deterministic");
            assert!(!problems.is_empty(), "a rejected file lists at least one problem");
            let lines: Vec<&str> = source.split('\n').collect();
            let mut previous = (0, 0);
            for problem in problems {
                assert_eq!(problem.origin, "fuzz.toml");
                assert!(!problem.message.trim().is_empty(), "empty message at {problem}");
                assert!((1..=lines.len()).contains(&problem.line), "line out of the file: {problem}");
                let line_chars = lines[problem.line - 1].chars().count();
                assert!((1..=line_chars + 1).contains(&problem.column), "column out of the line: {problem}");
                assert!((problem.line, problem.column) >= previous, "diagnostics are sorted by position");
                previous = (problem.line, problem.column);
            }
        }
        _ => panic!("parsing is deterministic: {first:?} then {again:?}"),
    }
});
