-- Evaluation runs (`switchboard eval`): a candidate prompt version against
-- a baseline on logged or given conversations, for the dashboard.
CREATE TABLE eval_runs (
    id         TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    prompt     TEXT NOT NULL,
    candidate  TEXT NOT NULL,
    baseline   TEXT NOT NULL,
    summary    TEXT NOT NULL,
    report     TEXT NOT NULL
);
CREATE INDEX eval_runs_prompt ON eval_runs (prompt, created_at);
