-- Switchboard's first schema: every answered (or failed) request, its
-- messages so that it can be replayed, and the feedback users leave on it.
-- Times are Unix milliseconds; ids are UUIDv7 text (they sort by time).

CREATE TABLE inferences (
    id             TEXT PRIMARY KEY,
    created_at     BIGINT NOT NULL,
    platform       TEXT NOT NULL,
    workspace      TEXT,
    channel        TEXT,
    thread         TEXT,
    user_id        TEXT,
    prompt_name    TEXT,
    prompt_version BIGINT,
    alias          TEXT NOT NULL,
    provider       TEXT,
    model          TEXT,
    input_tokens   BIGINT,
    output_tokens  BIGINT,
    ttft_ms        DOUBLE PRECISION,
    tpot_ms        DOUBLE PRECISION,
    total_ms       DOUBLE PRECISION NOT NULL,
    provider_ms    DOUBLE PRECISION NOT NULL,
    cost_usd       DOUBLE PRECISION,
    cache_hit      BIGINT NOT NULL DEFAULT 0,
    streamed       BIGINT NOT NULL,
    status         TEXT NOT NULL,
    error          TEXT,
    finish_reason  TEXT,
    attempts       BIGINT NOT NULL,
    attempt_log    TEXT NOT NULL,
    params         TEXT NOT NULL
);
CREATE INDEX inferences_created_at ON inferences (created_at);
CREATE INDEX inferences_prompt ON inferences (prompt_name, prompt_version);

CREATE TABLE inference_messages (
    inference_id TEXT NOT NULL REFERENCES inferences (id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    direction    TEXT NOT NULL,
    role         TEXT NOT NULL,
    content      TEXT NOT NULL,
    PRIMARY KEY (inference_id, position)
);

CREATE TABLE feedback (
    id           TEXT PRIMARY KEY,
    inference_id TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    score        DOUBLE PRECISION,
    comment      TEXT,
    user_id      TEXT,
    source       TEXT NOT NULL
);
CREATE INDEX feedback_inference ON feedback (inference_id);
