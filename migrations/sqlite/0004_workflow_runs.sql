-- Workflow runs: one row per run, replaced as the run progresses. `Snapshot` is the engine's
-- JSON snapshot (every executed step's record); `Version` grows with every save and a save
-- with a version not above the stored one changes nothing, so late writes of concurrent
-- steps never roll a run back. Same rules as the ClickHouse `workflow_runs` table.
CREATE TABLE workflow_runs (
    RunId TEXT NOT NULL PRIMARY KEY,
    WorkflowId TEXT NOT NULL,
    Status TEXT NOT NULL,
    Input TEXT NOT NULL,
    Snapshot TEXT NOT NULL,
    Result TEXT NOT NULL,
    Error TEXT NOT NULL,
    CreatedNs INTEGER NOT NULL,
    UpdatedNs INTEGER NOT NULL,
    Version INTEGER NOT NULL
);

-- Newest-first listing per workflow, and the runs of one status (recovery of `running` runs).
CREATE INDEX workflow_runs_workflow ON workflow_runs (WorkflowId, CreatedNs);
CREATE INDEX workflow_runs_status ON workflow_runs (Status, CreatedNs);
