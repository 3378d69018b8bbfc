//! How the list-valued span fields are stored as SQLite text, and integer conversions.
//!
//! Attribute lists become JSON objects of string values, written and read back in the
//! span's own order (duplicate keys kept), so `json_extract(SpanAttributes, '$."key"')` works
//! in ad-hoc SQL and a span reads back exactly as it was written. Events and links become
//! JSON arrays of objects with the Collector exporter's field names.
//!
//! Encoding is `json_out`'s (no serde), into one buffer per column that the write thread
//! reuses from row to row; decoding is serde_json's.

use std::io;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::json_out::{self, Object};
use crate::rows::{AttributeKey, AttributeText, Attributes, SpanEvent, SpanLink};

/// Replaces `out` with `attributes` as a JSON object of strings, in their order (duplicate
/// keys kept).
pub(super) fn attributes_to_json<'a>(
    attributes: &[(AttributeKey, AttributeText)],
    out: &'a mut Vec<u8>,
) -> io::Result<&'a str> {
    out.clear();
    json_out::pairs_as_object(out, attributes)?;
    as_text(out)
}

/// Replaces `out` with `events` as a JSON array of `{"Timestamp", "Name", "Attributes"}`.
pub(super) fn events_to_json<'a>(events: &[SpanEvent], out: &'a mut Vec<u8>) -> io::Result<&'a str> {
    out.clear();
    json_out::array(out, events, |out, event| {
        let SpanEvent { timestamp_ns, name, attributes } = event;
        let mut object = Object::start(out);
        object.i64("Timestamp", *timestamp_ns)?;
        object.str("Name", name)?;
        json_out::pairs_as_object(object.key("Attributes"), attributes)?;
        object.end();
        Ok(())
    })?;
    as_text(out)
}

/// Replaces `out` with `links` as a JSON array of `{"TraceId", "SpanId", "TraceState",
/// "Attributes"}`.
pub(super) fn links_to_json<'a>(links: &[SpanLink], out: &'a mut Vec<u8>) -> io::Result<&'a str> {
    out.clear();
    json_out::array(out, links, |out, link| {
        let SpanLink { trace_id, span_id, trace_state, attributes } = link;
        let mut object = Object::start(out);
        object.str("TraceId", trace_id)?;
        object.str("SpanId", span_id)?;
        object.str("TraceState", trace_state)?;
        json_out::pairs_as_object(object.key("Attributes"), attributes)?;
        object.end();
        Ok(())
    })?;
    as_text(out)
}

/// Replaces `out` with a sorted set of strings as a JSON array (`trace_index.Models` and
/// `ApiKeys`).
pub(super) fn set_to_json<'a>(values: &[String], out: &'a mut Vec<u8>) -> io::Result<&'a str> {
    out.clear();
    json_out::array(out, values, |out, value| json_out::string(out, value))?;
    as_text(out)
}

/// Reads `trace_index.Models` or `ApiKeys` back.
pub(super) fn set_from_json(text: &str) -> Result<Vec<String>, serde_json::Error> {
    serde_json::from_str(text)
}

/// The buffer as text: checked once (escaped JSON of `str`s is UTF-8), rather than assumed.
fn as_text(out: &[u8]) -> io::Result<&str> {
    std::str::from_utf8(out).map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))
}

/// Reads a JSON object of strings back into a list, in the object's order.
struct AttributesIn(Attributes);

impl<'de> Deserialize<'de> for AttributesIn {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor;

        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = AttributesIn;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a JSON object of string values")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AttributesIn, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry::<AttributeKey, AttributeText>()? {
                    pairs.push(pair);
                }
                Ok(AttributesIn(pairs))
            }
        }

        deserializer.deserialize_map(PairsVisitor)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EventIn {
    timestamp: i64,
    name: AttributeText,
    attributes: AttributesIn,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LinkIn {
    trace_id: String,
    span_id: String,
    trace_state: String,
    attributes: AttributesIn,
}

pub(super) fn attributes_from_json(text: &str) -> serde_json::Result<Attributes> {
    serde_json::from_str::<AttributesIn>(text).map(|attributes| attributes.0)
}

pub(super) fn events_from_json(text: &str) -> serde_json::Result<Vec<SpanEvent>> {
    let events: Vec<EventIn> = serde_json::from_str(text)?;
    Ok(events
        .into_iter()
        .map(|event| SpanEvent { timestamp_ns: event.timestamp, name: event.name, attributes: event.attributes.0 })
        .collect())
}

pub(super) fn links_from_json(text: &str) -> serde_json::Result<Vec<SpanLink>> {
    let links: Vec<LinkIn> = serde_json::from_str(text)?;
    Ok(links
        .into_iter()
        .map(|link| SpanLink {
            trace_id: link.trace_id,
            span_id: link.span_id,
            trace_state: link.trace_state,
            attributes: link.attributes.0,
        })
        .collect())
}

/// SQLite integers are signed 64-bit: larger counts and durations are stored as `i64::MAX`
/// rather than refusing the whole batch.
pub(super) fn to_sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn from_sql_int(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_keep_order_duplicates_and_odd_text() -> Result<(), Box<dyn std::error::Error>> {
        let attributes: Attributes = vec![
            ("z".into(), "last key first".into()),
            ("a".to_owned().into(), "quote \" backslash \\ nul \0 é 🚀".into()),
            ("z".into(), "duplicate".into()),
        ];
        assert_eq!(attributes_from_json(attributes_to_json(&attributes, &mut Vec::new())?)?, attributes);
        Ok(())
    }

    #[test]
    fn events_and_links_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let events = vec![SpanEvent { timestamp_ns: -5, name: "e".into(), attributes: vec![("k".into(), "v".into())] }];
        assert_eq!(events_from_json(events_to_json(&events, &mut Vec::new())?)?, events);
        let links =
            vec![SpanLink { trace_id: "t".into(), span_id: "s".into(), trace_state: "x=1".into(), attributes: vec![] }];
        assert_eq!(links_from_json(links_to_json(&links, &mut Vec::new())?)?, links);
        Ok(())
    }

    /// sonic-rs escapes in SIMD blocks: every character that must be escaped, at every offset
    /// of a block and across block ends, and in a string far longer than a block.
    #[test]
    fn escaping_holds_at_every_offset_and_length() -> Result<(), Box<dyn std::error::Error>> {
        let specials: String = (0u8..0x20).map(char::from).chain(['"', '\\', '\u{7f}', 'é', '\u{2028}', '🚀']).collect();
        let mut buffer = Vec::new();
        for offset in 0..70 {
            let value = format!("{}{specials}{}", "a".repeat(offset), "b".repeat(3 * offset));
            let attributes: Attributes = vec![(format!("k{offset}\n\"").into(), value.into())];
            let text = attributes_to_json(&attributes, &mut buffer)?;
            assert_eq!(attributes_from_json(text)?, attributes, "offset {offset}: {text}");
        }
        let long: Attributes = vec![("big".into(), "\"x\"".repeat(10_000).into())];
        assert_eq!(attributes_from_json(attributes_to_json(&long, &mut buffer)?)?, long);
        Ok(())
    }

    /// The text is what earlier versions wrote (rows of both read back alike, and ad-hoc SQL
    /// such as `json_extract(SpanAttributes, '$."k"')` keeps working); a buffer reused for the
    /// next row holds only that row.
    #[test]
    fn the_encoding_is_compact_json_with_the_exporter_field_names() -> Result<(), Box<dyn std::error::Error>> {
        let mut buffer = b"left over from the previous row".to_vec();
        let attributes: Attributes = vec![("k".into(), "v \"q\"".into()), ("n".into(), Default::default())];
        assert_eq!(attributes_to_json(&attributes, &mut buffer)?, r#"{"k":"v \"q\"","n":""}"#);
        assert_eq!(attributes_to_json(&[], &mut buffer)?, "{}");
        let events = vec![
            SpanEvent { timestamp_ns: -5, name: "e".into(), attributes: attributes.clone() },
            SpanEvent { timestamp_ns: 7, name: "f".into(), attributes: vec![] },
        ];
        assert_eq!(
            events_to_json(&events, &mut buffer)?,
            r#"[{"Timestamp":-5,"Name":"e","Attributes":{"k":"v \"q\"","n":""}},{"Timestamp":7,"Name":"f","Attributes":{}}]"#
        );
        assert_eq!(events_to_json(&[], &mut buffer)?, "[]");
        let links =
            vec![SpanLink { trace_id: "t".into(), span_id: "s".into(), trace_state: "x=1".into(), attributes: vec![] }];
        assert_eq!(
            links_to_json(&links, &mut buffer)?,
            r#"[{"TraceId":"t","SpanId":"s","TraceState":"x=1","Attributes":{}}]"#
        );
        Ok(())
    }
}
