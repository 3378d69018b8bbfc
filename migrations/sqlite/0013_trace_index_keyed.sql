-- trace_index becomes a WITHOUT ROWID table keyed by TraceId, and a trace's models move from
-- the trace_index_models table into its row (Models, a JSON array of the distinct
-- `gen_ai.request.model` values of its chat spans, sorted; '[]' when it has none). A new trace
-- wrote six B-tree entries for its summary (the row, the TraceId key, the two listing indexes,
-- the model row and its model-first index, which no query read) and ran three statements (a
-- lookup, the row, the model); it now writes three entries in one statement, the lookup only
-- when the row is there already: about 14,500 instructions fewer per benchmark request
-- (callgrind; BENCHMARKS.md). The model filter reads the row's array (json_each). Existing
-- rows are copied with their models, in the migration's transaction.
CREATE TABLE trace_index_keyed (
    TraceId TEXT NOT NULL PRIMARY KEY,
    StartNs INTEGER NOT NULL,
    EndNs INTEGER NOT NULL,
    RootSpanName TEXT NOT NULL,
    RootSpanId TEXT NOT NULL,
    Agent TEXT NOT NULL,
    AgentTimestamp INTEGER NOT NULL,
    AgentSpanId TEXT NOT NULL,
    Tenant TEXT NOT NULL,
    TenantTimestamp INTEGER NOT NULL,
    TenantSpanId TEXT NOT NULL,
    HasError INTEGER NOT NULL,
    SpanCount INTEGER NOT NULL,
    InputTokens INTEGER NOT NULL,
    OutputTokens INTEGER NOT NULL,
    CostNanoUsd INTEGER NOT NULL,
    Models TEXT NOT NULL
) WITHOUT ROWID;

INSERT INTO trace_index_keyed SELECT t.TraceId, t.StartNs, t.EndNs, t.RootSpanName, t.RootSpanId, t.Agent,
    t.AgentTimestamp, t.AgentSpanId, t.Tenant, t.TenantTimestamp, t.TenantSpanId, t.HasError, t.SpanCount,
    t.InputTokens, t.OutputTokens, t.CostNanoUsd,
    (SELECT json_group_array(m.Model ORDER BY m.Model) FROM trace_index_models AS m WHERE m.TraceId = t.TraceId)
    FROM trace_index AS t;

DROP TABLE trace_index_models;

DROP TABLE trace_index;

ALTER TABLE trace_index_keyed RENAME TO trace_index;

CREATE INDEX trace_index_start ON trace_index (StartNs, TraceId);

CREATE INDEX trace_index_tenant_start ON trace_index (Tenant, StartNs, TraceId);
