-- Eval results. `eval_runs`: one row per suite run; `eval_results`: one row per case and
-- scorer of a run; `eval_scores`: one row per online scorer on a sampled request. Primary
-- keys make a repeated write a no-op (INSERT OR IGNORE). Times are nanoseconds; Score is
-- NULL when the scorer errored.
CREATE TABLE eval_runs (
    RunId TEXT NOT NULL PRIMARY KEY,
    Suite TEXT NOT NULL,
    Target TEXT NOT NULL,
    Mode TEXT NOT NULL,
    StartedAt INTEGER NOT NULL,
    DurationMs REAL NOT NULL,
    Total INTEGER NOT NULL,
    Passed INTEGER NOT NULL,
    Errored INTEGER NOT NULL,
    PassRate REAL NOT NULL,
    GatePassed INTEGER NOT NULL
);

CREATE INDEX eval_runs_suite ON eval_runs (Suite, StartedAt);

CREATE TABLE eval_results (
    RunId TEXT NOT NULL,
    CaseId TEXT NOT NULL,
    Scorer TEXT NOT NULL,
    Score REAL,
    Passed INTEGER NOT NULL,
    Reason TEXT NOT NULL,
    Error TEXT NOT NULL,
    LatencyMs REAL NOT NULL,
    PRIMARY KEY (RunId, CaseId, Scorer)
);

CREATE TABLE eval_scores (
    Timestamp INTEGER NOT NULL,
    TraceId TEXT NOT NULL,
    SpanId TEXT NOT NULL,
    Agent TEXT NOT NULL,
    Scorer TEXT NOT NULL,
    Score REAL,
    Passed INTEGER NOT NULL,
    Reason TEXT NOT NULL,
    Error TEXT NOT NULL,
    PRIMARY KEY (TraceId, SpanId, Scorer)
);

CREATE INDEX eval_scores_timestamp ON eval_scores (Timestamp);
