-- Indexes for the dashboard's tenant-scoped views (a tenant's API key sees only its tenant):
-- a tenant's usage rows over a time range (overview, cost, latency) and a tenant's traces
-- over a time range (overview figures, the traces list with its tenant filter).
CREATE INDEX usage_tenant_timestamp ON usage (Tenant, Timestamp);

CREATE INDEX trace_index_tenant_start ON trace_index (Tenant, StartNs, TraceId);
