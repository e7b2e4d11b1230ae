-- Retrieval: the team's own knowledge, searched for every answer whose
-- prompt version has a `[retrieval]` table. The same schema as SQLite's
-- 0011, with PostgreSQL's full-text search as the lexical index.
--
-- Vectors are kept as little-endian f32 in BYTEA and searched by an
-- in-process index on each replica (see the README's retrieval section for
-- why not pgvector).
CREATE TABLE knowledge_sources (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    scope      TEXT NOT NULL,
    embedder   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE knowledge_documents (
    id           TEXT PRIMARY KEY,
    source       TEXT NOT NULL REFERENCES knowledge_sources (name) ON DELETE CASCADE,
    doc_key      TEXT NOT NULL,
    title        TEXT NOT NULL,
    link         TEXT,
    content_hash TEXT NOT NULL,
    channel      TEXT,
    audience     TEXT,
    author       TEXT,
    at_ms        BIGINT,
    updated_at   BIGINT NOT NULL,
    UNIQUE (source, doc_key)
);

CREATE TABLE knowledge_chunks (
    id          BIGSERIAL PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    ord         BIGINT NOT NULL,
    heading     TEXT NOT NULL,
    anchor      TEXT,
    body        TEXT NOT NULL,
    tokens      BIGINT NOT NULL,
    embedding   BYTEA,
    -- Title and heading weigh more than the body.
    title       TEXT NOT NULL DEFAULT '',
    tsv         tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', title), 'A') || to_tsvector('english', body)
    ) STORED
);
CREATE INDEX knowledge_chunks_document ON knowledge_chunks (document_id);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING GIN (tsv);

CREATE TABLE knowledge_state (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO knowledge_state (id, generation) VALUES (1, 0);

ALTER TABLE inferences ADD COLUMN retrieval TEXT;
