-- The trace index gets the API keys a trace's requests were made with (ApiKeys, a JSON array
-- of the distinct non-empty `glassbox.api_key_id` values of its spans, sorted; '[]' when none
-- carries one), so the traces list can be filtered by API key as it is by model (json_each).
-- A set rather than the earliest span's value: a caller may carry one trace across several
-- requests made with different keys, and each key's filter then finds it. No index: the
-- listing walks the start-time index and checks each row's array, as for models.
--
-- Existing rows are filled from their spans in this migration's transaction (one lookup of
-- each trace's spans by the (TraceId, SpanId) key). To go back: drop the column (SQLite 3.35+:
-- ALTER TABLE trace_index DROP COLUMN ApiKeys) and delete version 14 from glassbox_migrations.
ALTER TABLE trace_index ADD COLUMN ApiKeys TEXT NOT NULL DEFAULT '[]';

UPDATE trace_index SET ApiKeys = (
    SELECT json_group_array(k.ApiKey ORDER BY k.ApiKey) FROM (
        SELECT DISTINCT json_extract(s.SpanAttributes, '$."glassbox.api_key_id"') AS ApiKey
        FROM spans AS s
        WHERE s.TraceId = trace_index.TraceId
    ) AS k
    WHERE k.ApiKey IS NOT NULL AND k.ApiKey != ''
);
