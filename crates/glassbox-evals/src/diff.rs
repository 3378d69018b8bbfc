//! Readable line diffs for failure reasons: what was expected (`-`) against what came (`+`).

use similar::{ChangeTag, TextDiff};

/// A line diff of `expected` against `actual`, unchanged lines kept for context (at most
/// three around each change), every line prefixed `- `, `+ ` or `  `.
pub fn text_diff(expected: &str, actual: &str) -> String {
    let diff = TextDiff::from_lines(expected, actual);
    let mut out = String::new();
    for (group_idx, group) in diff.grouped_ops(3).iter().enumerate() {
        if group_idx > 0 {
            out.push_str("  ...\n");
        }
        for op in group {
            for change in diff.iter_changes(op) {
                let sign = match change.tag() {
                    ChangeTag::Delete => "- ",
                    ChangeTag::Insert => "+ ",
                    ChangeTag::Equal => "  ",
                };
                out.push_str(sign);
                out.push_str(change.value().trim_end_matches('\n'));
                out.push('\n');
            }
        }
    }
    if out.is_empty() {
        out.push_str("  (no difference)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_removed_and_added_lines() {
        let diff = text_diff("a\nb\nc\n", "a\nB\nc\n");
        assert_eq!(diff, "  a\n- b\n+ B\n  c\n");
    }

    #[test]
    fn single_lines_without_newline() {
        assert_eq!(text_diff("hello", "hullo"), "- hello\n+ hullo\n");
    }
}
