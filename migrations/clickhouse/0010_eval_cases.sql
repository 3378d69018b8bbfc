-- One row per case of an eval suite run: what the case sent, what came back and what was
-- expected, so the dashboard can show a failing case and diff its output against the
-- baseline run's. Written before the run's row (which makes the run visible).
CREATE TABLE IF NOT EXISTS {database}.eval_cases{on_cluster}
(
    RunId String,
    CaseId String,
    Input String CODEC(ZSTD(1)),
    Output String CODEC(ZSTD(1)),
    Expected String CODEC(ZSTD(1)),
    Error String CODEC(ZSTD(1))
)
ENGINE = {replicated}ReplacingMergeTree({replica_args})
ORDER BY (RunId, CaseId);
