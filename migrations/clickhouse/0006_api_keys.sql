-- Glassbox ClickHouse migration 0005: API keys created with `glassbox keys create`.
--
-- Only the SHA-256 of a key is kept, never the key. A key's agents / workflows are an array of
-- ids with a flag for "every one". ReplacingMergeTree by Id, read with FINAL: storing a key
-- again with the same id replaces it.
--
-- Placeholders (see 0001_spans.sql): {database}, {on_cluster}, {replicated}, {replica_args}.
CREATE TABLE IF NOT EXISTS {database}.api_keys{on_cluster}
(
    Id String,
    Tenant String,
    KeySha256 String,
    AllAgents Bool,
    Agents Array(String),
    AllWorkflows Bool,
    Workflows Array(String),
    CreatedNs Int64
)
ENGINE = {replicated}ReplacingMergeTree({replica_args})
ORDER BY Id;
