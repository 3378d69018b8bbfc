-- A trace's spans are stored together: one row per trace and write batch (`span_groups`),
-- its spans as one JSON array, instead of one row per span. A benchmark request's three spans
-- wrote six B-tree entries (each row and its (TraceId, SpanId) key) and a seventh in the
-- request index; they now write two (the group and its key) and one narrow request row:
-- about 6% fewer instructions per request (BENCHMARKS.md).
--
-- span_groups: Part numbers a trace's groups from 0; a group holds at most 64 spans (a trace
-- whose spans reach the store in more than one batch, or more than 64 in one, has more than
-- one group). Each element of Spans is an object with the otel_traces column names of
-- migration 1 but TraceId (Timestamp and Duration integers of nanoseconds; ResourceAttributes
-- and SpanAttributes objects of strings in the span's order; Events and Links arrays).
--
-- A span is stored once. The writer adds to a trace only the spans its groups do not hold: a
-- trace not in trace_index has none (both are written in the same transactions); of a trace
-- with one group it reads that group's span ids; a trace with more groups has every span id
-- in span_keys. So a replayed batch adds nothing, and a trace a caller keeps going (its
-- traceparent) costs each batch a key lookup per span, not a read of everything it holds.
CREATE TABLE span_groups (
    TraceId TEXT NOT NULL,
    Part INTEGER NOT NULL,
    Spans TEXT NOT NULL,
    PRIMARY KEY (TraceId, Part)
);

CREATE TABLE span_keys (
    TraceId TEXT NOT NULL,
    SpanId TEXT NOT NULL,
    PRIMARY KEY (TraceId, SpanId)
) WITHOUT ROWID;

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
    SELECT TraceId, Part, json_group_array(json(Span)) FROM (
        SELECT TraceId, (row_number() OVER (PARTITION BY TraceId ORDER BY Timestamp, SpanId) - 1) / 64 AS Part,
            json_object(
                'Timestamp', Timestamp, 'SpanId', SpanId, 'ParentSpanId', ParentSpanId, 'TraceState', TraceState,
                'SpanName', SpanName, 'SpanKind', SpanKind, 'ServiceName', ServiceName,
                'ResourceAttributes', json(ResourceAttributes), 'ScopeName', ScopeName,
                'ScopeVersion', ScopeVersion, 'SpanAttributes', json(SpanAttributes), 'Duration', Duration,
                'StatusCode', StatusCode, 'StatusMessage', StatusMessage, 'Events', json(Events),
                'Links', json(Links)) AS Span
        FROM spans)
    GROUP BY TraceId, Part;

INSERT INTO span_keys
    SELECT TraceId, SpanId FROM spans
    WHERE TraceId IN (SELECT TraceId FROM spans GROUP BY TraceId HAVING count(*) > 64);

INSERT INTO request_spans
    SELECT Timestamp, TraceId, SpanId, Duration, SpanKind = 'Server', StatusCode,
        json_extract(SpanAttributes, '$."glassbox.request"'),
        json_extract(SpanAttributes, '$."http.response.status_code"'),
        json_extract(SpanAttributes, '$."glassbox.tripwire.processor"'),
        json_extract(SpanAttributes, '$."glassbox.tenant"')
    FROM spans WHERE RequestOrBlock = 1;

INSERT INTO workflow_spans
    SELECT json_extract(SpanAttributes, '$."glassbox.workflow.run_id"') AS RunId, Timestamp, TraceId, SpanId
    FROM spans WHERE substr(SpanName, 1, 15) = 'invoke_workflow' AND RunId IS NOT NULL;

DROP TABLE spans;

-- The spans in migration 1's columns and types, one row per span, for ad-hoc SQL (it reads
-- every group: filter by TraceId, which reads only that trace's groups, where you can). The
-- store's own readers do not use it. json_extract rather than ->>, so SQLite before 3.38 (the
-- sqlite3 shell of older distributions) can still open the file.
CREATE VIEW spans AS
    SELECT CAST(json_extract(s.value, '$.Timestamp') AS INTEGER) AS Timestamp, g.TraceId AS TraceId,
        CAST(json_extract(s.value, '$.SpanId') AS TEXT) AS SpanId,
        CAST(json_extract(s.value, '$.ParentSpanId') AS TEXT) AS ParentSpanId,
        CAST(json_extract(s.value, '$.TraceState') AS TEXT) AS TraceState,
        CAST(json_extract(s.value, '$.SpanName') AS TEXT) AS SpanName,
        CAST(json_extract(s.value, '$.SpanKind') AS TEXT) AS SpanKind,
        CAST(json_extract(s.value, '$.ServiceName') AS TEXT) AS ServiceName,
        CAST(json_extract(s.value, '$.ResourceAttributes') AS TEXT) AS ResourceAttributes,
        CAST(json_extract(s.value, '$.ScopeName') AS TEXT) AS ScopeName,
        CAST(json_extract(s.value, '$.ScopeVersion') AS TEXT) AS ScopeVersion,
        CAST(json_extract(s.value, '$.SpanAttributes') AS TEXT) AS SpanAttributes,
        CAST(json_extract(s.value, '$.Duration') AS INTEGER) AS Duration,
        CAST(json_extract(s.value, '$.StatusCode') AS TEXT) AS StatusCode,
        CAST(json_extract(s.value, '$.StatusMessage') AS TEXT) AS StatusMessage,
        CAST(json_extract(s.value, '$.Events') AS TEXT) AS Events,
        CAST(json_extract(s.value, '$.Links') AS TEXT) AS Links
    FROM span_groups AS g, json_each(g.Spans) AS s;
