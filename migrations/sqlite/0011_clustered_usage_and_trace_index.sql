-- The usage and trace_index tables become WITHOUT ROWID tables clustered on their keys, and
-- usage is keyed by (TraceId, SpanId) instead of SpanId alone.
--
-- Why: span ids are random, so every usage row landed on a random page of the old key, a page
-- rewritten to the WAL and at the checkpoint, and in a large file seldom in the cache. Trace
-- ids that Glassbox starts begin with their millisecond (trace_context::new_trace_id), so keys
-- led by TraceId take new rows at the right edge (traces continued from a caller's
-- traceparent keep the caller's ids). And a rowid table with a key keeps a second B-tree for
-- the key: clustered, a usage insert touches 3 B-trees instead of 5 (usage_trace goes: the key
-- answers "the usage of a trace"), a trace_index upsert 3 instead of 4 (its secondary indexes
-- already end in TraceId). Measured in BENCHMARKS.md ("the usage key"): into a usage table of
-- 2 million rows, 9.4 against 30.9 CPU-us and 853 against 10,522 bytes written per insert; the
-- file is 13% larger, as the secondary indexes of a clustered table carry its key.
--
-- A retried usage row is still ignored: it has the same (TraceId, SpanId). Two different
-- traces' calls that drew the same span id are now both kept.
CREATE TABLE usage_clustered (
    Timestamp INTEGER NOT NULL,
    TraceId TEXT NOT NULL,
    SpanId TEXT NOT NULL,
    Tenant TEXT NOT NULL,
    ApiKeyId TEXT NOT NULL,
    Agent TEXT NOT NULL,
    Workflow TEXT NOT NULL,
    Provider TEXT NOT NULL,
    Model TEXT NOT NULL,
    InputTokens INTEGER NOT NULL,
    OutputTokens INTEGER NOT NULL,
    CachedInputTokens INTEGER NOT NULL,
    ReasoningTokens INTEGER NOT NULL,
    CostNanoUsd INTEGER NOT NULL,
    CostUnknown INTEGER NOT NULL,
    LatencyNs INTEGER NOT NULL,
    TimeToFirstTokenNs INTEGER NOT NULL,
    Status TEXT NOT NULL,
    ErrorType TEXT NOT NULL,
    PRIMARY KEY (TraceId, SpanId)
) WITHOUT ROWID;

INSERT OR IGNORE INTO usage_clustered SELECT Timestamp, TraceId, SpanId, Tenant, ApiKeyId, Agent, Workflow,
    Provider, Model, InputTokens, OutputTokens, CachedInputTokens, ReasoningTokens, CostNanoUsd, CostUnknown,
    LatencyNs, TimeToFirstTokenNs, Status, ErrorType FROM usage;

DROP TABLE usage;

ALTER TABLE usage_clustered RENAME TO usage;

CREATE INDEX usage_timestamp ON usage (Timestamp);

CREATE INDEX usage_tenant_timestamp ON usage (Tenant, Timestamp);

CREATE TABLE trace_index_clustered (
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
    CostNanoUsd INTEGER NOT NULL
) WITHOUT ROWID;

INSERT INTO trace_index_clustered SELECT TraceId, StartNs, EndNs, RootSpanName, RootSpanId, Agent, AgentTimestamp,
    AgentSpanId, Tenant, TenantTimestamp, TenantSpanId, HasError, SpanCount, InputTokens, OutputTokens, CostNanoUsd
    FROM trace_index;

DROP TABLE trace_index;

ALTER TABLE trace_index_clustered RENAME TO trace_index;

CREATE INDEX trace_index_start ON trace_index (StartNs, TraceId);

CREATE INDEX trace_index_tenant_start ON trace_index (Tenant, StartNs, TraceId);
