-- One row per model call. SpanId is the `chat {model}` span's id, unique per call, so a
-- retried batch is ignored row by row (INSERT OR IGNORE). Cost is in billionths of a US
-- dollar; CostUnknown is 1 when no pricing entry matched the model. Times are nanoseconds.
CREATE TABLE usage (
    Timestamp INTEGER NOT NULL,
    TraceId TEXT NOT NULL,
    SpanId TEXT NOT NULL PRIMARY KEY,
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
    ErrorType TEXT NOT NULL
);

CREATE INDEX usage_timestamp ON usage (Timestamp);

CREATE INDEX usage_trace ON usage (TraceId, Timestamp);
