-- The dashboard's overview counts API requests (a `Server` span carrying `glassbox.request`)
-- and guardrail blocks (a span carrying `glassbox.tripwire.processor`) over a time range; see
-- RequestStats in src/query.rs. This partial index holds only those spans (about one in six),
-- so the overview reads them without scanning every span of the range. The condition is kept
-- cheap for the writer: a text comparison and a substring search, no JSON parsing; readers
-- parse the attributes of the few rows it finds.
CREATE INDEX spans_requests ON spans (Timestamp)
    WHERE SpanKind = 'Server' OR instr(SpanAttributes, '"glassbox.tripwire.processor"') > 0;
