-- Spans, in the column layout of the OpenTelemetry Collector's ClickHouse exporter
-- (otel_traces), so that the same queries and tools read both backends.
-- Timestamp and Duration are nanoseconds (since the Unix epoch / of wall time) as INTEGER.
-- ResourceAttributes and SpanAttributes are JSON objects of string values, in the order the
-- span carried them; Events and Links are JSON arrays of objects with the exporter's field
-- names (Timestamp, Name, Attributes / TraceId, SpanId, TraceState, Attributes).
-- Deduplication: a span is identified by (TraceId, SpanId); batches are written with
-- INSERT OR IGNORE, so a retried batch (same deduplication token, same rows) adds nothing.
-- Tokens are not recorded: the key already makes every retry idempotent, whatever its token.
CREATE TABLE spans (
    Timestamp INTEGER NOT NULL,
    TraceId TEXT NOT NULL,
    SpanId TEXT NOT NULL,
    ParentSpanId TEXT NOT NULL,
    TraceState TEXT NOT NULL,
    SpanName TEXT NOT NULL,
    SpanKind TEXT NOT NULL,
    ServiceName TEXT NOT NULL,
    ResourceAttributes TEXT NOT NULL,
    ScopeName TEXT NOT NULL,
    ScopeVersion TEXT NOT NULL,
    SpanAttributes TEXT NOT NULL,
    Duration INTEGER NOT NULL,
    StatusCode TEXT NOT NULL,
    StatusMessage TEXT NOT NULL,
    Events TEXT NOT NULL,
    Links TEXT NOT NULL,
    PRIMARY KEY (TraceId, SpanId)
);

CREATE INDEX spans_timestamp ON spans (Timestamp);
