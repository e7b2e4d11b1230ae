-- The prompt registry: immutable numbered versions, movable labels (a label
-- may split traffic over several versions by weight), bindings of prompts
-- to workspaces, channels and threads, and an audit log of every change
-- and every refused attempt. `prompt_registry_state.generation` goes up
-- with every change, so replicas can tell their cached copy is stale.

CREATE TABLE prompt_versions (
    name       TEXT NOT NULL,
    version    BIGINT NOT NULL,
    body       TEXT NOT NULL,
    message    TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE prompt_labels (
    name       TEXT NOT NULL,
    label      TEXT NOT NULL,
    arms       TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (name, label)
);

CREATE TABLE prompt_bindings (
    scope      TEXT PRIMARY KEY,
    prompt     TEXT NOT NULL,
    label      TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE prompt_audit (
    id           TEXT PRIMARY KEY,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target       TEXT NOT NULL,
    before_value TEXT,
    after_value  TEXT,
    outcome      TEXT NOT NULL,
    detail       TEXT,
    -- The registry generation the change made (0 for refusals): orders
    -- changes made within the same millisecond.
    seq          BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX prompt_audit_target ON prompt_audit (target, at);

CREATE TABLE prompt_registry_state (
    id         BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO prompt_registry_state (id, generation) VALUES (1, 0);

-- Which label an inference's version came through, and whether it was
-- real traffic (`live`) or an admin's dry run (`test`).
ALTER TABLE inferences ADD COLUMN prompt_label TEXT;
ALTER TABLE inferences ADD COLUMN purpose TEXT NOT NULL DEFAULT 'live';
