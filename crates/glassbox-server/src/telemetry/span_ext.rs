//! What code outside the layer may read and change on a recorded span: its ids, its parent
//! (a caller's W3C `traceparent`, or another span), its name and extra attributes.
//!
//! The record lives in the span's extensions in the `tracing_subscriber::Registry`, reached
//! through [`tracing::Span::with_subscriber`] and a downcast to the registry (every Glassbox
//! subscriber is built on it). A span nobody records — no Glassbox layer installed, the span
//! disabled or filtered out — answers `None` / `false` and ignores changes, so library users
//! without Glassbox's subscriber still work (see `TraceContext::from_traceparent`).

use std::borrow::Cow;

use tracing_subscriber::registry::LookupSpan as _;

use super::record::{AttributeValue, Key, SpanRecord};

/// The W3C ids of a recorded span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanIds {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

/// A parent span in another process, from its W3C `traceparent` (and `tracestate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteParent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
    /// The `tracestate` header as OpenTelemetry normalizes it (empty when absent or invalid).
    pub trace_state: String,
}

/// Runs `change` on the record of `span`, if the span is recorded.
fn with_record<R>(span: &tracing::Span, change: impl FnOnce(&mut SpanRecord) -> R) -> Option<R> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let data = registry.span(id)?;
        let mut extensions = data.extensions_mut();
        extensions.get_mut::<SpanRecord>().map(change)
    })
    .flatten()
}

/// Glassbox's span operations on [`tracing::Span`].
pub trait SpanExt {
    /// The span's ids, `None` if the span is not recorded.
    fn span_ids(&self) -> Option<SpanIds>;

    /// Continues a caller's trace: the span takes the remote span as its parent (trace id,
    /// sampling, trace state). Call it before the span gets children: they copy its trace id
    /// when they are created. Answers whether the span is recorded.
    fn set_remote_parent(&self, parent: &RemoteParent) -> bool;

    /// Makes `parent` (a recorded span, possibly closed later or elsewhere) this span's parent,
    /// as for work spawned from a request that outlives it. Same rule as `set_remote_parent`.
    fn set_parent_span(&self, parent: &tracing::Span) -> bool;

    /// Renames the span (`otel.name` recorded later does the same).
    fn rename(&self, name: impl Into<Cow<'static, str>>);

    /// The kill-safety journal lines of the span's children created after this call wait in
    /// it and go out with its own in one `write` when it closes, as a request span's do
    /// (`span_journal`'s group commit). Only for a span that closes soon after its children:
    /// until then their lines are not in the journal.
    fn gather_journal_lines(&self);

    /// Adds an attribute that is not one of the span's declared fields.
    fn set_attribute(&self, key: &'static str, value: impl Into<AttributeValue>);
}

impl SpanExt for tracing::Span {
    fn span_ids(&self) -> Option<SpanIds> {
        with_record(self, |record| SpanIds {
            trace_id: record.trace_id,
            span_id: record.span_id,
            sampled: record.sampled,
        })
    }

    fn set_remote_parent(&self, parent: &RemoteParent) -> bool {
        with_record(self, |record| {
            record.trace_id = parent.trace_id;
            record.parent_span_id = parent.span_id;
            record.parent_is_remote = true;
            record.sampled = parent.sampled;
            record.trace_state.clone_from(&parent.trace_state);
        })
        .is_some()
    }

    fn set_parent_span(&self, parent: &tracing::Span) -> bool {
        let Some((trace_id, span_id, sampled, trace_state)) =
            with_record(parent, |record| (record.trace_id, record.span_id, record.sampled, record.trace_state.clone()))
        else {
            return false;
        };
        with_record(self, |record| {
            record.trace_id = trace_id;
            record.parent_span_id = span_id;
            record.parent_is_remote = false;
            record.sampled = sampled;
            record.trace_state = trace_state;
        })
        .is_some()
    }

    fn rename(&self, name: impl Into<Cow<'static, str>>) {
        let name = name.into();
        with_record(self, |record| record.name = name);
    }

    fn gather_journal_lines(&self) {
        with_record(self, |record| record.gathers_journal = true);
    }

    fn set_attribute(&self, key: &'static str, value: impl Into<AttributeValue>) {
        let value = value.into();
        with_record(self, |record| record.push_attribute(Key::Name(key), value));
    }
}
