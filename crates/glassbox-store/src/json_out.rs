//! JSON text of the rows' fixed shapes, written without serde: the punctuation and field
//! names directly, every string through sonic-rs's SIMD escaping
//! (`Formatter::write_string_fast`), numbers through its integer formatting.
//!
//! A request's spans carry a few hundred short strings (attribute keys and values, event
//! names), encoded twice: for the span journal's line and for SQLite's columns. Through serde
//! (`Serialize` impls on a `sonic_rs::Serializer`) that was 88.5 K instructions per request, 13% of
//! the server's; written this way, 68.6 K (BENCHMARKS.md). Decoding stays serde_json's.

use std::io;

use sonic_rs::format::{CompactFormatter, Formatter};

use crate::rows::{AttributeKey, AttributeText};

/// Appends `text` as a JSON string, escaped where JSON needs it. (A scalar check-and-copy
/// path for short strings with nothing to escape was tried: it cost 60% more instructions
/// than sonic-rs's SIMD path, even for 10-byte keys.)
pub(crate) fn string(out: &mut Vec<u8>, text: &str) -> io::Result<()> {
    CompactFormatter.write_string_fast(out, text, true)
}

/// Appends `pairs` as a JSON object of strings, in their order (duplicate keys kept).
pub(crate) fn pairs_as_object(out: &mut Vec<u8>, pairs: &[(AttributeKey, AttributeText)]) -> io::Result<()> {
    out.push(b'{');
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        string(out, key)?;
        out.push(b':');
        string(out, value)?;
    }
    out.push(b'}');
    Ok(())
}

/// Appends `pairs` as a JSON array of two-string arrays (serde's form of `Vec<(String, String)>`).
pub(crate) fn pairs_as_arrays(out: &mut Vec<u8>, pairs: &[(AttributeKey, AttributeText)]) -> io::Result<()> {
    out.push(b'[');
    for (index, (key, value)) in pairs.iter().enumerate() {
        out.extend_from_slice(if index > 0 { b",[" } else { b"[" });
        string(out, key)?;
        out.push(b',');
        string(out, value)?;
        out.push(b']');
    }
    out.push(b']');
    Ok(())
}

/// Appends `items` as a JSON array, each written by `item`.
pub(crate) fn array<T>(
    out: &mut Vec<u8>,
    items: &[T],
    mut item: impl FnMut(&mut Vec<u8>, &T) -> io::Result<()>,
) -> io::Result<()> {
    out.push(b'[');
    for (index, value) in items.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        item(out, value)?;
    }
    out.push(b']');
    Ok(())
}

/// A JSON object being written: fields in call order, then [`end`](Self::end). Field names are
/// the callers' constants, written as they are (they need no escaping).
pub(crate) struct Object<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> Object<'a> {
    pub(crate) fn start(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Object { out, empty: true }
    }

    /// Writes `"name":` (after a comma unless first) and returns the buffer for the value.
    pub(crate) fn key(&mut self, name: &str) -> &mut Vec<u8> {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    pub(crate) fn str(&mut self, name: &str, value: &str) -> io::Result<()> {
        string(self.key(name), value)
    }

    pub(crate) fn i64(&mut self, name: &str, value: i64) -> io::Result<()> {
        CompactFormatter.write_i64(self.key(name), value)
    }

    pub(crate) fn u64(&mut self, name: &str, value: u64) -> io::Result<()> {
        CompactFormatter.write_u64(self.key(name), value)
    }

    pub(crate) fn end(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_compact_json() -> io::Result<()> {
        let pairs: Vec<(AttributeKey, AttributeText)> =
            vec![("k".into(), "v \"q\"\n".into()), ("k".to_owned().into(), Default::default())];
        let mut out = Vec::new();
        let mut object = Object::start(&mut out);
        object.i64("i", -3)?;
        object.u64("u", u64::MAX)?;
        object.str("s", "é\\")?;
        pairs_as_object(object.key("o"), &pairs)?;
        pairs_as_arrays(object.key("a"), &pairs)?;
        array(object.key("n"), &[1_i64, 2], |out, value| CompactFormatter.write_i64(out, *value))?;
        pairs_as_arrays(object.key("e"), &[])?;
        object.end();
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"{"i":-3,"u":18446744073709551615,"s":"é\\","o":{"k":"v \"q\"\n","k":""},"a":[["k","v \"q\"\n"],["k",""]],"n":[1,2],"e":[]}"#
        );
        Ok(())
    }
}
