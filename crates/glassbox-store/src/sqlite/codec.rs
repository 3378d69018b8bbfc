//! How spans are stored as SQLite text (migration 15's `span_groups.Spans`), and integer
//! conversions.
//!
//! A group is a JSON array of span objects with the `otel_traces` column names. Attribute lists
//! become JSON objects of string values, written and read back in the span's own order
//! (duplicate keys kept), so `json_extract(SpanAttributes, '$."key"')` works in ad-hoc SQL
//! over the `spans` view and a span reads back exactly as it was written. Events and links
//! become JSON arrays of objects with the Collector exporter's field names.
//!
//! Encoding is `json_out`'s (no serde), into a buffer that the write thread reuses from group
//! to group; decoding is serde_json's.

use std::io;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::json_out::{self, Object};
use crate::rows::{AttributeKey, AttributeText, Attributes, SpanEvent, SpanLink, SpanRow, StatusCode};

/// Appends `events` as a JSON array of `{"Timestamp", "Name", "Attributes"}`.
fn write_events(out: &mut Vec<u8>, events: &[SpanEvent]) -> io::Result<()> {
    json_out::array(out, events, |out, event| {
        let SpanEvent { timestamp_ns, name, attributes } = event;
        let mut object = Object::start(out);
        object.i64("Timestamp", *timestamp_ns)?;
        object.str("Name", name)?;
        json_out::pairs_as_object(object.key("Attributes"), attributes)?;
        object.end();
        Ok(())
    })
}

/// Appends `links` as a JSON array of `{"TraceId", "SpanId", "TraceState", "Attributes"}`.
fn write_links(out: &mut Vec<u8>, links: &[SpanLink]) -> io::Result<()> {
    json_out::array(out, links, |out, link| {
        let SpanLink { trace_id, span_id, trace_state, attributes } = link;
        let mut object = Object::start(out);
        object.str("TraceId", trace_id)?;
        object.str("SpanId", span_id)?;
        object.str("TraceState", trace_state)?;
        json_out::pairs_as_object(object.key("Attributes"), attributes)?;
        object.end();
        Ok(())
    })
}

/// Replaces `out` with `spans` (one trace's) as a `span_groups.Spans` array (migration 15):
/// one object per span with the `otel_traces` column names but `TraceId`, which the group's
/// row holds.
pub(super) fn span_group_to_json<'a>(spans: &[&SpanRow], out: &'a mut Vec<u8>) -> io::Result<&'a str> {
    out.clear();
    json_out::array(out, spans, |out, span| {
        let mut object = Object::start(out);
        object.i64("Timestamp", span.timestamp_ns)?;
        object.str("SpanId", &span.span_id)?;
        object.str("ParentSpanId", &span.parent_span_id)?;
        object.str("TraceState", &span.trace_state)?;
        object.str("SpanName", &span.span_name)?;
        object.str("SpanKind", &span.span_kind)?;
        object.str("ServiceName", &span.service_name)?;
        json_out::pairs_as_object(object.key("ResourceAttributes"), &span.resource_attributes)?;
        object.str("ScopeName", &span.scope_name)?;
        object.str("ScopeVersion", &span.scope_version)?;
        json_out::pairs_as_object(object.key("SpanAttributes"), &span.span_attributes)?;
        object.i64("Duration", to_sql_int(span.duration_ns))?;
        object.str("StatusCode", span.status_code.as_str())?;
        object.str("StatusMessage", &span.status_message)?;
        write_events(object.key("Events"), &span.events)?;
        write_links(object.key("Links"), &span.links)?;
        object.end();
        Ok(())
    })?;
    as_text(out)
}

/// Reads a `span_groups.Spans` array back into the spans of trace `trace_id`.
pub(super) fn span_group_from_json(trace_id: &str, text: &str) -> serde_json::Result<Vec<SpanRow>> {
    let spans: Vec<SpanIn> = serde_json::from_str(text)?;
    Ok(spans
        .into_iter()
        .map(|span| SpanRow {
            timestamp_ns: span.timestamp,
            trace_id: trace_id.to_owned(),
            span_id: span.span_id,
            parent_span_id: span.parent_span_id,
            trace_state: span.trace_state,
            span_name: span.span_name,
            span_kind: span.span_kind,
            service_name: span.service_name,
            resource_attributes: span.resource_attributes.0,
            scope_name: span.scope_name,
            scope_version: span.scope_version,
            span_attributes: span.span_attributes.0,
            duration_ns: from_sql_int(span.duration),
            status_code: StatusCode::parse(&span.status_code),
            status_message: span.status_message,
            events: span.events.into_iter().map(EventIn::into_event).collect(),
            links: span.links.into_iter().map(LinkIn::into_link).collect(),
        })
        .collect())
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

impl EventIn {
    fn into_event(self) -> SpanEvent {
        SpanEvent { timestamp_ns: self.timestamp, name: self.name, attributes: self.attributes.0 }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LinkIn {
    trace_id: String,
    span_id: String,
    trace_state: String,
    attributes: AttributesIn,
}

impl LinkIn {
    fn into_link(self) -> SpanLink {
        SpanLink {
            trace_id: self.trace_id,
            span_id: self.span_id,
            trace_state: self.trace_state,
            attributes: self.attributes.0,
        }
    }
}

/// One element of a `span_groups.Spans` array.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SpanIn {
    timestamp: i64,
    span_id: String,
    parent_span_id: String,
    trace_state: String,
    span_name: String,
    span_kind: String,
    service_name: String,
    resource_attributes: AttributesIn,
    scope_name: String,
    scope_version: String,
    span_attributes: AttributesIn,
    duration: i64,
    status_code: String,
    status_message: String,
    events: Vec<EventIn>,
    links: Vec<LinkIn>,
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

    /// One span with the given attributes, events and links, every other field distinct.
    fn span_with(attributes: Attributes, events: Vec<SpanEvent>, links: Vec<SpanLink>) -> SpanRow {
        SpanRow {
            timestamp_ns: -5,
            trace_id: "trace".into(),
            span_id: "span".into(),
            parent_span_id: "parent".into(),
            trace_state: "x=1".into(),
            span_name: "chat \"o3\"".into(),
            span_kind: "Client".into(),
            service_name: "glassbox".into(),
            resource_attributes: vec![("service.name".into(), "glassbox".into())],
            scope_name: "scope".into(),
            scope_version: "1".into(),
            span_attributes: attributes,
            duration_ns: u64::MAX,
            status_code: StatusCode::Error,
            status_message: "bad\nnews".into(),
            events,
            links,
        }
    }

    fn round_trip(spans: &[SpanRow]) -> Result<Vec<SpanRow>, Box<dyn std::error::Error>> {
        let borrowed: Vec<&SpanRow> = spans.iter().collect();
        Ok(span_group_from_json("trace", span_group_to_json(&borrowed, &mut Vec::new())?)?)
    }

    #[test]
    fn attributes_keep_order_duplicates_and_odd_text() -> Result<(), Box<dyn std::error::Error>> {
        let attributes: Attributes = vec![
            ("z".into(), "last key first".into()),
            ("a".to_owned().into(), "quote \" backslash \\ nul \0 é 🚀".into()),
            ("z".into(), "duplicate".into()),
        ];
        let span = span_with(attributes, vec![], vec![]);
        let mut expected = span.clone();
        expected.duration_ns = i64::MAX as u64;
        assert_eq!(round_trip(&[span])?, [expected]);
        Ok(())
    }

    #[test]
    fn events_links_and_several_spans_round_trip() -> Result<(), Box<dyn std::error::Error>> {
        let events = vec![SpanEvent { timestamp_ns: -5, name: "e".into(), attributes: vec![("k".into(), "v".into())] }];
        let links =
            vec![SpanLink { trace_id: "t".into(), span_id: "s".into(), trace_state: "x=1".into(), attributes: vec![] }];
        let mut first = span_with(vec![], events, links);
        first.duration_ns = 7;
        let second = SpanRow { trace_id: "trace".into(), span_id: "other".into(), ..SpanRow::default() };
        let spans = [first, second];
        assert_eq!(round_trip(&spans)?, spans);
        assert_eq!(round_trip(&[])?, []);
        Ok(())
    }

    /// sonic-rs escapes in SIMD blocks: every character that must be escaped, at every offset
    /// of a block and across block ends, and in a string far longer than a block.
    #[test]
    fn escaping_holds_at_every_offset_and_length() -> Result<(), Box<dyn std::error::Error>> {
        let specials: String =
            (0u8..0x20).map(char::from).chain(['"', '\\', '\u{7f}', 'é', '\u{2028}', '🚀']).collect();
        for offset in 0..70 {
            let value = format!("{}{specials}{}", "a".repeat(offset), "b".repeat(3 * offset));
            let attributes: Attributes = vec![(format!("k{offset}\n\"").into(), value.into())];
            let span = SpanRow { trace_id: "trace".into(), span_attributes: attributes, ..SpanRow::default() };
            assert_eq!(round_trip(std::slice::from_ref(&span))?, [span], "offset {offset}");
        }
        let long: Attributes = vec![("big".into(), "\"x\"".repeat(10_000).into())];
        let span = SpanRow { trace_id: "trace".into(), span_attributes: long, ..SpanRow::default() };
        assert_eq!(round_trip(std::slice::from_ref(&span))?, [span]);
        Ok(())
    }

    /// The text is compact JSON with the `otel_traces` column names (the `spans` view and
    /// ad-hoc SQL such as `json_extract(SpanAttributes, '$."k"')` read it); a buffer reused for
    /// the next group holds only that group.
    #[test]
    fn the_encoding_is_compact_json_with_the_exporter_field_names() -> Result<(), Box<dyn std::error::Error>> {
        let mut buffer = b"left over from the previous group".to_vec();
        let attributes: Attributes = vec![("k".into(), "v \"q\"".into()), ("n".into(), Default::default())];
        let events = vec![
            SpanEvent { timestamp_ns: -5, name: "e".into(), attributes: attributes.clone() },
            SpanEvent { timestamp_ns: 7, name: "f".into(), attributes: vec![] },
        ];
        let links =
            vec![SpanLink { trace_id: "t".into(), span_id: "s".into(), trace_state: "x=1".into(), attributes: vec![] }];
        let span = span_with(attributes, events, links);
        assert_eq!(
            span_group_to_json(&[&span], &mut buffer)?,
            concat!(
                r#"[{"Timestamp":-5,"SpanId":"span","ParentSpanId":"parent","TraceState":"x=1","#,
                r#""SpanName":"chat \"o3\"","SpanKind":"Client","ServiceName":"glassbox","#,
                r#""ResourceAttributes":{"service.name":"glassbox"},"ScopeName":"scope","ScopeVersion":"1","#,
                r#""SpanAttributes":{"k":"v \"q\"","n":""},"Duration":9223372036854775807,"StatusCode":"Error","#,
                r#""StatusMessage":"bad\nnews","#,
                r#""Events":[{"Timestamp":-5,"Name":"e","Attributes":{"k":"v \"q\"","n":""}},"#,
                r#"{"Timestamp":7,"Name":"f","Attributes":{}}],"#,
                r#""Links":[{"TraceId":"t","SpanId":"s","TraceState":"x=1","Attributes":{}}]}]"#
            )
        );
        assert_eq!(span_group_to_json(&[], &mut buffer)?, "[]");
        Ok(())
    }
}
