//! Typed reading of the spanned TOML document.
//!
//! Every accessor reports what is wrong with a value (with the value's position) and returns
//! `None`, so the caller carries on and the whole file is checked in one pass. Values are only
//! trusted through these accessors, which is also where `${VAR}` interpolation happens.

use std::ops::RangeInclusive;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostics::{Diagnostic, LineIndex};
use crate::interpolate::interpolate;

pub(crate) type Node<'a> = &'a Spanned<DeValue<'a>>;

/// A value of the document, with the dotted path that names it in messages.
#[derive(Clone)]
pub(crate) struct Field<'a> {
    pub(crate) key: &'a str,
    pub(crate) key_offset: usize,
    pub(crate) path: String,
    pub(crate) node: Node<'a>,
}

impl Field<'_> {
    pub(crate) fn offset(&self) -> usize {
        self.node.span().start
    }
}

/// The entries of a table, sorted into file order (toml's map is sorted by key).
pub(crate) fn fields_of<'a>(parent_path: &str, table: &'a DeTable<'a>) -> Vec<Field<'a>> {
    let mut fields: Vec<Field<'a>> = table
        .iter()
        .map(|(key, node)| Field {
            key: key.get_ref().as_ref(),
            key_offset: key.span().start,
            path: join(parent_path, key.get_ref()),
            node,
        })
        .collect();
    fields.sort_by_key(|field| field.key_offset);
    fields
}

/// `parent.key`, quoting the key the way TOML would when it is not a bare key.
pub(crate) fn join(parent: &str, key: &str) -> String {
    let is_bare = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if is_bare { key.to_owned() } else { format!("{key:?}") };
    if parent.is_empty() { key } else { format!("{parent}.{key}") }
}

/// Collects problems while the document is read.
pub(crate) struct Cx<'s> {
    source: &'s str,
    env: &'s dyn Fn(&str) -> Option<String>,
    problems: Vec<(usize, String)>,
}

impl<'s> Cx<'s> {
    pub(crate) fn new(source: &'s str, env: &'s dyn Fn(&str) -> Option<String>) -> Self {
        Self { source, env, problems: Vec::new() }
    }

    pub(crate) fn error(&mut self, offset: usize, message: impl Into<String>) {
        self.problems.push((offset, message.into()));
    }

    pub(crate) fn n_problems(&self) -> usize {
        self.problems.len()
    }

    /// The problems in file order (problems at the same place keep the order they were found).
    pub(crate) fn into_diagnostics(mut self, origin: &str) -> Vec<Diagnostic> {
        let line_index = LineIndex::new(self.source);
        self.problems.sort_by_key(|(offset, _)| *offset);
        // TOML's error recovery can report the same problem twice.
        self.problems.dedup();
        self.problems
            .into_iter()
            .map(|(offset, message)| {
                let (line, column) = line_index.position(offset);
                Diagnostic { origin: origin.to_owned(), line, column, message }
            })
            .collect()
    }

    fn type_error(&mut self, field: &Field<'_>, expected: &str) {
        let found = kind_of(field.node.get_ref());
        self.error(field.offset(), format!("{}: expected {expected}, found {found}", field.path));
    }

    /// A string value, interpolated.
    pub(crate) fn string(&mut self, field: &Field<'_>) -> Option<String> {
        match field.node.get_ref() {
            DeValue::String(text) => self.interpolate(&field.path, field.node, text),
            _ => {
                self.type_error(field, "a string");
                None
            }
        }
    }

    /// Interpolates the string `text` held by `node`. An error points at the offending `${`
    /// when the string is written in the file exactly as it reads (no escapes, single-line),
    /// otherwise at the start of the value.
    pub(crate) fn interpolate(&mut self, path: &str, node: Node<'_>, text: &str) -> Option<String> {
        match interpolate(text, self.env) {
            Ok(value) => Some(value),
            Err(error) => {
                let span = node.span();
                let raw = self.source.get(span.clone()).unwrap_or_default();
                let is_verbatim = raw.len() >= 2
                    && !raw.starts_with("\"\"\"")
                    && !raw.starts_with("'''")
                    && (raw.starts_with('"') || raw.starts_with('\''))
                    && raw.get(1..raw.len() - 1) == Some(text);
                let offset = if is_verbatim { span.start + 1 + error.offset } else { span.start };
                self.error(offset, format!("{path}: {}", error.message));
                None
            }
        }
    }

    /// An integer within `range`.
    pub(crate) fn integer(&mut self, field: &Field<'_>, range: RangeInclusive<i128>) -> Option<i128> {
        let DeValue::Integer(integer) = field.node.get_ref() else {
            self.type_error(field, "an integer");
            return None;
        };
        let value = i128::from_str_radix(integer.as_str(), integer.radix()).ok();
        match value {
            Some(value) if range.contains(&value) => Some(value),
            _ => {
                let bounds = if *range.end() >= i128::from(u64::MAX) {
                    format!("at least {}", range.start())
                } else {
                    format!("between {} and {}", range.start(), range.end())
                };
                self.error(field.offset(), format!("{}: must be {bounds}, got {integer}", field.path));
                None
            }
        }
    }

    /// A number (integers are accepted too) within `range`.
    pub(crate) fn float(&mut self, field: &Field<'_>, range: RangeInclusive<f64>) -> Option<f64> {
        let (value, written) = match field.node.get_ref() {
            DeValue::Float(float) => (float.as_str().parse::<f64>().ok(), float.to_string()),
            DeValue::Integer(integer) => {
                (i64::from_str_radix(integer.as_str(), integer.radix()).ok().map(|v| v as f64), integer.to_string())
            }
            _ => {
                self.type_error(field, "a number");
                return None;
            }
        };
        match value {
            Some(value) if range.contains(&value) => Some(value),
            _ => {
                self.error(
                    field.offset(),
                    format!("{}: must be between {:?} and {:?}, got {written}", field.path, range.start(), range.end()),
                );
                None
            }
        }
    }

    /// A table whose keys are the fields of a struct (`known`); see [`Section`].
    pub(crate) fn section<'a>(&mut self, field: &Field<'a>, known: &'static [&'static str]) -> Option<Section<'a>> {
        let DeValue::Table(table) = field.node.get_ref() else {
            self.type_error(field, "a table");
            return None;
        };
        Some(Section {
            path: field.path.clone(),
            anchor: field.key_offset,
            known,
            entries: fields_of(&field.path, table).into_iter().map(|f| (f, false)).collect(),
        })
    }

    /// A table whose keys are names chosen by the user (ids, header names), in file order.
    pub(crate) fn entries<'a>(&mut self, field: &Field<'a>) -> Option<Vec<Field<'a>>> {
        let DeValue::Table(table) = field.node.get_ref() else {
            self.type_error(field, "a table");
            return None;
        };
        Some(fields_of(&field.path, table))
    }

    /// The elements of an array.
    pub(crate) fn array<'a>(&mut self, field: &Field<'a>) -> Option<Vec<Field<'a>>> {
        let DeValue::Array(array) = field.node.get_ref() else {
            self.type_error(field, "an array");
            return None;
        };
        Some(
            array
                .iter()
                .enumerate()
                .map(|(idx, node)| Field {
                    key: field.key,
                    key_offset: node.span().start,
                    path: format!("{}[{idx}]", field.path),
                    node,
                })
                .collect(),
        )
    }
}

/// A table with a fixed set of keys. Keys are taken with [`Section::get`]; [`Section::finish`]
/// reports every key that was never taken as unknown.
pub(crate) struct Section<'a> {
    path: String,
    /// Where "missing key" problems point: the table's own key.
    anchor: usize,
    known: &'static [&'static str],
    entries: Vec<(Field<'a>, bool)>,
}

impl<'a> Section<'a> {
    pub(crate) fn root(table: &'a DeTable<'a>, known: &'static [&'static str]) -> Self {
        Self {
            path: String::new(),
            anchor: 0,
            known,
            entries: fields_of("", table).into_iter().map(|f| (f, false)).collect(),
        }
    }

    pub(crate) fn get(&mut self, key: &str) -> Option<Field<'a>> {
        debug_assert!(self.known.contains(&key), "{key} is not a known key of {}", self.path);
        let (field, used) = self.entries.iter_mut().find(|(field, _)| field.key == key)?;
        *used = true;
        Some(field.clone())
    }

    /// Whether the table has `key`, without taking it.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(field, _)| field.key == key)
    }

    pub(crate) fn require(&mut self, cx: &mut Cx<'_>, key: &str) -> Option<Field<'a>> {
        let field = self.get(key);
        if field.is_none() {
            cx.error(self.anchor, format!("{}: missing required key {key:?}", self.path));
        }
        field
    }

    pub(crate) fn finish(self, cx: &mut Cx<'_>) {
        for (field, used) in self.entries {
            if used {
                continue;
            }
            let hint = match closest(field.key, self.known) {
                Some(known) => format!("did you mean {known:?}?"),
                None => format!("expected one of: {}", self.known.join(", ")),
            };
            cx.error(field.key_offset, format!("{}: unknown key ({hint})", field.path));
        }
    }
}

/// The known key that `key` is most likely a misspelling of.
fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|candidate| (edit_distance(key, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Optimal string alignment distance: edits and swaps of neighbours each count one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = rows[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(rows[i - 1][j] + 1).min(rows[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

pub(crate) fn kind_of(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_quote_keys_that_are_not_bare() {
        assert_eq!(join("", "models"), "models");
        assert_eq!(join("models", "gpt-4o_mini"), "models.gpt-4o_mini");
        assert_eq!(join("models", "gpt-4.1"), "models.\"gpt-4.1\"");
        assert_eq!(join("headers", "a b"), "headers.\"a b\"");
        assert_eq!(join("x", ""), "x.\"\"");
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        let known = &["provider", "model", "base_url"];
        assert_eq!(closest("modle", known), Some("model"));
        assert_eq!(closest("provder", known), Some("provider"));
        assert_eq!(closest("colour", known), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("modle", "model"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
