//! `${VAR}` interpolation of string values.
//!
//! `${VAR}` is replaced by the variable's value (an empty value stays empty), `${VAR:-default}`
//! by the value or, when the variable is unset or empty, by `default` (taken literally, up to the
//! first `}`), and `$${` is a literal `${`. A `$` not followed by `{` is kept as it is.

/// Why a string could not be interpolated; `offset` is the byte offset of the offending `${`
/// inside the string.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InterpolationError {
    pub(crate) offset: usize,
    pub(crate) message: String,
}

pub(crate) fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, InterpolationError> {
    if !text.contains("${") {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest_start = 0;
    while let Some(found) = text[rest_start..].find('$') {
        let dollar = rest_start + found;
        out.push_str(&text[rest_start..dollar]);
        let after = &text[dollar..];
        if after.starts_with("$${") {
            out.push_str("${");
            rest_start = dollar + 3;
        } else if after.starts_with("${") {
            let Some(close) = after.find('}') else {
                return Err(InterpolationError {
                    offset: dollar,
                    message: "unterminated \"${\" (write \"$${\" for a literal \"${\")".to_owned(),
                });
            };
            let inner = &after[2..close];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !is_env_name(name) {
                return Err(InterpolationError {
                    offset: dollar,
                    message: format!(
                        "invalid environment variable name {name:?} in \"${{...}}\" \
                         (use letters, digits and \"_\", not starting with a digit)"
                    ),
                });
            }
            match (env(name), default) {
                (Some(value), Some(default)) if value.is_empty() => out.push_str(default),
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(InterpolationError {
                        offset: dollar,
                        message: format!("environment variable {name:?} is not set"),
                    });
                }
            }
            rest_start = dollar + close + 1;
        } else {
            out.push('$');
            rest_start = dollar + 1;
        }
    }
    out.push_str(&text[rest_start..]);
    Ok(out)
}

/// Environment variable names as shells accept them: `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(first) if first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("example.com".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn run(text: &str) -> Result<String, InterpolationError> {
        interpolate(text, &env)
    }

    #[test]
    fn replaces_variables() {
        assert_eq!(run("https://${HOST}/v1").as_deref(), Ok("https://example.com/v1"));
        assert_eq!(run("${HOST}${HOST}").as_deref(), Ok("example.comexample.com"));
        assert_eq!(run("[${EMPTY}]").as_deref(), Ok("[]"));
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        assert_eq!(run("${NOPE:-fallback}").as_deref(), Ok("fallback"));
        assert_eq!(run("${EMPTY:-fallback}").as_deref(), Ok("fallback"));
        assert_eq!(run("${HOST:-fallback}").as_deref(), Ok("example.com"));
        assert_eq!(run("${NOPE:-}").as_deref(), Ok(""));
        assert_eq!(run("${NOPE:-a:-b}").as_deref(), Ok("a:-b"));
    }

    #[test]
    fn escapes_and_lone_dollars_are_literal() {
        assert_eq!(run("$${HOST}").as_deref(), Ok("${HOST}"));
        assert_eq!(run("cost: $5, $HOST, $").as_deref(), Ok("cost: $5, $HOST, $"));
        assert_eq!(run("$$${HOST}").as_deref(), Ok("$${HOST}"));
    }

    #[test]
    fn unset_variable_is_an_error_at_its_position() {
        let error = run("abc ${NOPE} ${HOST}").unwrap_err();
        assert_eq!(error.offset, 4);
        assert_eq!(error.message, "environment variable \"NOPE\" is not set");
    }

    #[test]
    fn malformed_references_are_errors() {
        assert_eq!(run("x ${HOST").unwrap_err().offset, 2);
        assert!(run("${}").unwrap_err().message.contains("invalid environment variable name"));
        assert!(run("${1A}").is_err());
        assert!(run("${A B}").is_err());
    }
}
