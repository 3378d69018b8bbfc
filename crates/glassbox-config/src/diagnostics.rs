//! Problems found in a configuration file, each with the place it was found, and the error type
//! of the crate.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file was read but has problems; every problem found is listed.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Every problem found in one file, sorted by position. Displays as one
/// `origin:line:column: message` per line.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Number of problems.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no problems (never the case inside [`ConfigError::Invalid`]).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The problems in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, diagnostic) in self.0.iter().enumerate() {
            if idx > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// One problem: where it is (1-based line and column, the column counted in characters) and
/// what it is. Messages are lowercase, start with the dotted key they are about and never
/// contain a header value.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The file name (or whatever origin was given to [`crate::parse`]).
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.origin, self.line, self.column, self.message)
    }
}

/// Turns byte offsets into 1-based line and column numbers.
pub(crate) struct LineIndex<'s> {
    text: &'s str,
    line_starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub(crate) fn new(text: &'s str) -> Self {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(idx, _)| idx + 1)).collect();
        Self { text, line_starts }
    }

    /// Line and column (both 1-based; the column counts characters) of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line_idx = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let line_start = self.line_starts[line_idx];
        let column = self.text[line_start..offset].chars().count() + 1;
        (line_idx + 1, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let index = LineIndex::new("ab\nçd\n");
        assert_eq!(index.position(0), (1, 1));
        assert_eq!(index.position(1), (1, 2));
        assert_eq!(index.position(3), (2, 1));
        // "ç" is two bytes; "d" is the second character of line 2.
        assert_eq!(index.position(5), (2, 2));
        assert_eq!(index.position(7), (3, 1));
        assert_eq!(index.position(100), (3, 1));
    }

    #[test]
    fn diagnostics_display_one_per_line() {
        let diagnostics = Diagnostics(vec![
            Diagnostic { origin: "g.toml".into(), line: 1, column: 2, message: "a".into() },
            Diagnostic { origin: "g.toml".into(), line: 3, column: 4, message: "b".into() },
        ]);
        assert_eq!(diagnostics.to_string(), "g.toml:1:2: a\ng.toml:3:4: b");
    }
}
