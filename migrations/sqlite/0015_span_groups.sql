-- A trace's spans are stored together: one row per trace and write batch (`span_groups`),
-- its spans as one JSON array, instead of one row per span. A benchmark request's three spans
-- wrote six B-tree entries (each row and its (TraceId, SpanId) key) and a seventh in the
-- request index; they now write two (the group and its key) and one narrow request row:
-- about 8% fewer instructions per request (BENCHMARKS.md).
--
-- span_groups: Part numbers a trace's groups from 0 (a trace whose spans reach the store in
-- more than one batch has more than one). Each element of Spans is an object with the
-- otel_traces column names of migration 1 but TraceId (Timestamp and Duration integers of
-- nanoseconds; ResourceAttributes and SpanAttributes objects of strings in the span's order;
-- Events and Links arrays). A span is stored once: the writer adds to a trace the index knows
-- only the spans its stored groups do not hold, so a replayed batch adds nothing.
CREATE TABLE span_groups (
    TraceId TEXT NOT NULL,
    Part INTEGER NOT NULL,
    Spans TEXT NOT NULL,
    PRIMARY KEY (TraceId, Part)
);

-- The spans the overview counts (RequestStats in src/query.rs), with the values it reads: a
-- `Server` span, or one carrying `glassbox.tripwire.processor` (migration 10's RequestOrBlock).
-- Request, HttpStatus, Tripwire and Tenant are the span's `glassbox.request`,
-- `http.response.status_code`, `glassbox.tripwire.processor` and `glassbox.tenant`
-- attributes, NULL when it has none.
CREATE TABLE request_spans (
    Timestamp INTEGER NOT NULL,
    TraceId TEXT NOT NULL,
    SpanId TEXT NOT NULL,
    Duration INTEGER NOT NULL,
    Server INTEGER NOT NULL,
    StatusCode TEXT NOT NULL,
    Request TEXT,
    HttpStatus TEXT,
    Tripwire TEXT,
    Tenant TEXT,
    PRIMARY KEY (Timestamp, TraceId, SpanId)
) WITHOUT ROWID;

-- The workflow spans (named `invoke_workflow…`) that carry a `glassbox.workflow.run_id`, for
-- the lookup of a run's traces (src/sqlite/runs.rs), keyed by run.
CREATE TABLE workflow_spans (
    RunId TEXT NOT NULL,
    Timestamp INTEGER NOT NULL,
    TraceId TEXT NOT NULL,
    SpanId TEXT NOT NULL,
    PRIMARY KEY (RunId, Timestamp, TraceId, SpanId)
) WITHOUT ROWID;

INSERT INTO span_groups (TraceId, Part, Spans)
    SELECT TraceId, 0, json_group_array(json_object(
        'Timestamp', Timestamp, 'SpanId', SpanId, 'ParentSpanId', ParentSpanId, 'TraceState', TraceState,
        'SpanName', SpanName, 'SpanKind', SpanKind, 'ServiceName', ServiceName,
        'ResourceAttributes', json(ResourceAttributes), 'ScopeName', ScopeName, 'ScopeVersion', ScopeVersion,
        'SpanAttributes', json(SpanAttributes), 'Duration', Duration, 'StatusCode', StatusCode,
        'StatusMessage', StatusMessage, 'Events', json(Events), 'Links', json(Links)))
    FROM spans GROUP BY TraceId;

INSERT INTO request_spans
    SELECT Timestamp, TraceId, SpanId, Duration, SpanKind = 'Server', StatusCode,
        json_extract(SpanAttributes, '$."glassbox.request"'),
        json_extract(SpanAttributes, '$."http.response.status_code"'),
        json_extract(SpanAttributes, '$."glassbox.tripwire.processor"'),
        json_extract(SpanAttributes, '$."glassbox.tenant"')
    FROM spans WHERE RequestOrBlock = 1;

INSERT INTO workflow_spans
    SELECT json_extract(SpanAttributes, '$."glassbox.workflow.run_id"') AS RunId, Timestamp, TraceId, SpanId
    FROM spans WHERE SpanName LIKE 'invoke\_workflow%' ESCAPE '\' AND RunId IS NOT NULL;

DROP TABLE spans;

-- The spans in migration 1's columns, one row per span, for ad-hoc SQL (it reads every group:
-- filter span_groups by TraceId first where you can). The store's own readers do not use it.
CREATE VIEW spans AS
    SELECT s.value ->> 'Timestamp' AS Timestamp, g.TraceId AS TraceId, s.value ->> 'SpanId' AS SpanId,
        s.value ->> 'ParentSpanId' AS ParentSpanId, s.value ->> 'TraceState' AS TraceState,
        s.value ->> 'SpanName' AS SpanName, s.value ->> 'SpanKind' AS SpanKind,
        s.value ->> 'ServiceName' AS ServiceName, s.value -> 'ResourceAttributes' AS ResourceAttributes,
        s.value ->> 'ScopeName' AS ScopeName, s.value ->> 'ScopeVersion' AS ScopeVersion,
        s.value -> 'SpanAttributes' AS SpanAttributes, s.value ->> 'Duration' AS Duration,
        s.value ->> 'StatusCode' AS StatusCode, s.value ->> 'StatusMessage' AS StatusMessage,
        s.value -> 'Events' AS Events, s.value -> 'Links' AS Links
    FROM span_groups AS g, json_each(g.Spans) AS s;
