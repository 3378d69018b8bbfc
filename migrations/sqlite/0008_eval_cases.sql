-- One row per case of an eval suite run (see migrations/clickhouse/0010_eval_cases.sql).
CREATE TABLE eval_cases (
    RunId TEXT NOT NULL,
    CaseId TEXT NOT NULL,
    Input TEXT NOT NULL,
    Output TEXT NOT NULL,
    Expected TEXT NOT NULL,
    Error TEXT NOT NULL,
    PRIMARY KEY (RunId, CaseId)
);
