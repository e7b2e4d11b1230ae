-- The feedback dashboard: admin accounts (argon2 password hashes, never
-- the password), their sessions (the SHA-256 of the cookie's token, so a
-- leaked table cannot be replayed), which answers a reviewer has looked
-- at, and the datasets reviewers collect answers into.

CREATE TABLE dashboard_accounts (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE dashboard_sessions (
    token_hash TEXT PRIMARY KEY,
    account    TEXT NOT NULL REFERENCES dashboard_accounts (name) ON DELETE CASCADE,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_account ON dashboard_sessions (account);

CREATE TABLE feedback_reviews (
    inference_id TEXT PRIMARY KEY,
    reviewed_at  BIGINT NOT NULL,
    reviewed_by  TEXT NOT NULL
);

CREATE TABLE dataset_items (
    dataset      TEXT NOT NULL,
    inference_id TEXT NOT NULL,
    added_at     BIGINT NOT NULL,
    added_by     TEXT NOT NULL,
    PRIMARY KEY (dataset, inference_id)
);
