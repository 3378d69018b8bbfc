-- API keys created with `glassbox keys create`: only the SHA-256 of a key is kept, never the
-- key. Agents / Workflows are JSON arrays of ids, NULL for "every one".
CREATE TABLE api_keys (
    Id TEXT NOT NULL PRIMARY KEY,
    Tenant TEXT NOT NULL,
    KeySha256 TEXT NOT NULL UNIQUE,
    Agents TEXT,
    Workflows TEXT,
    CreatedNs INTEGER NOT NULL
);

-- Budget rebuild at start: usage of one period summed per tenant and key.
CREATE INDEX usage_tenant_key ON usage (Tenant, ApiKeyId, Timestamp);
