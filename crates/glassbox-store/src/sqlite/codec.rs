//! How the list-valued span fields are stored as SQLite text, and integer conversions.
//!
//! Attribute lists become JSON objects of string values, written and read back in the
//! span's own order (duplicate keys kept), so `json_extract(SpanAttributes, '$."key"')` works
//! in ad-hoc SQL and a span reads back exactly as it was written. Events and links become
//! JSON arrays of objects with the Collector exporter's field names.
//!
//! Encoding is sonic-rs's (SIMD string escaping: a span's many short attribute strings were a
//! sixth of the server's instructions with serde_json's byte loop); decoding stays serde_json's.

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::rows::{SpanEvent, SpanLink};
use crate::spool::approx_pairs_bytes;

/// Serializes an attribute list as a JSON object, keeping its order.
struct AttributesOut<'a>(&'a [(String, String)]);

impl Serialize for AttributesOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (key, value) in self.0 {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// Reads a JSON object of strings back into a list, in the object's order.
struct AttributesIn(Vec<(String, String)>);

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
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(AttributesIn(pairs))
            }
        }

        deserializer.deserialize_map(PairsVisitor)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct EventOut<'a> {
    timestamp: i64,
    name: &'a str,
    attributes: AttributesOut<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EventIn {
    timestamp: i64,
    name: String,
    attributes: AttributesIn,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LinkOut<'a> {
    trace_id: &'a str,
    span_id: &'a str,
    trace_state: &'a str,
    attributes: AttributesOut<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LinkIn {
    trace_id: String,
    span_id: String,
    trace_state: String,
    attributes: AttributesIn,
}

/// JSON text of `value` in a buffer of `capacity` bytes. sonic-rs reserves six bytes per byte of
/// each string it writes (the worst case of escaping); a buffer twice the text's estimated size
/// saves the reallocations that growing from empty costs.
fn to_json<T: Serialize>(value: &T, capacity: usize) -> sonic_rs::Result<String> {
    let mut out = Vec::with_capacity(capacity);
    sonic_rs::to_writer(&mut out, value)?;
    String::from_utf8(out).map_err(<sonic_rs::Error as serde::ser::Error>::custom)
}

pub(super) fn attributes_to_json(attributes: &[(String, String)]) -> sonic_rs::Result<String> {
    to_json(&AttributesOut(attributes), 2 * approx_pairs_bytes(attributes) + 64)
}

pub(super) fn attributes_from_json(text: &str) -> serde_json::Result<Vec<(String, String)>> {
    serde_json::from_str::<AttributesIn>(text).map(|attributes| attributes.0)
}

pub(super) fn events_to_json(events: &[SpanEvent]) -> sonic_rs::Result<String> {
    let events: Vec<EventOut<'_>> = events
        .iter()
        .map(|event| EventOut {
            timestamp: event.timestamp_ns,
            name: &event.name,
            attributes: AttributesOut(&event.attributes),
        })
        .collect();
    let estimate: usize = events.iter().map(|event| 64 + event.name.len() + approx_pairs_bytes(event.attributes.0)).sum();
    to_json(&events, 2 * estimate + 64)
}

pub(super) fn events_from_json(text: &str) -> serde_json::Result<Vec<SpanEvent>> {
    let events: Vec<EventIn> = serde_json::from_str(text)?;
    Ok(events
        .into_iter()
        .map(|event| SpanEvent { timestamp_ns: event.timestamp, name: event.name, attributes: event.attributes.0 })
        .collect())
}

pub(super) fn links_to_json(links: &[SpanLink]) -> sonic_rs::Result<String> {
    let links: Vec<LinkOut<'_>> = links
        .iter()
        .map(|link| LinkOut {
            trace_id: &link.trace_id,
            span_id: &link.span_id,
            trace_state: &link.trace_state,
            attributes: AttributesOut(&link.attributes),
        })
        .collect();
    let estimate: usize = links.iter().map(|link| 128 + link.trace_state.len() + approx_pairs_bytes(link.attributes.0)).sum();
    to_json(&links, 2 * estimate + 64)
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
        let attributes = vec![
            ("z".to_owned(), "last key first".to_owned()),
            ("a".to_owned(), "quote \" backslash \\ nul \0 é 🚀".to_owned()),
            ("z".to_owned(), "duplicate".to_owned()),
        ];
        assert_eq!(attributes_from_json(&attributes_to_json(&attributes)?)?, attributes);
        Ok(())
    }

    #[test]
    fn events_and_links_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let events = vec![SpanEvent { timestamp_ns: -5, name: "e".into(), attributes: vec![("k".into(), "v".into())] }];
        assert_eq!(events_from_json(&events_to_json(&events)?)?, events);
        let links =
            vec![SpanLink { trace_id: "t".into(), span_id: "s".into(), trace_state: "x=1".into(), attributes: vec![] }];
        assert_eq!(links_from_json(&links_to_json(&links)?)?, links);
        Ok(())
    }

    /// sonic-rs escapes in SIMD blocks: every character that must be escaped, at every offset
    /// of a block and across block ends, in strings longer than the buffer's first estimate.
    #[test]
    fn escaping_holds_at_every_offset_and_length() -> Result<(), Box<dyn std::error::Error>> {
        let specials: String = (0u8..0x20).map(char::from).chain(['"', '\\', '\u{7f}', 'é', '\u{2028}', '🚀']).collect();
        for offset in 0..70 {
            let value = format!("{}{specials}{}", "a".repeat(offset), "b".repeat(3 * offset));
            let attributes = vec![(format!("k{offset}\n\""), value)];
            let text = attributes_to_json(&attributes)?;
            assert_eq!(attributes_from_json(&text)?, attributes, "offset {offset}: {text}");
        }
        let long = vec![("big".to_owned(), "\"x\"".repeat(10_000))];
        assert_eq!(attributes_from_json(&attributes_to_json(&long)?)?, long);
        Ok(())
    }
}
