-- Retrieval: the team's own knowledge, searched for every answer whose
-- prompt version has a `[retrieval]` table.
--
-- A source is a named collection (a folder of files, a Slack or Discord
-- channel) owned by a scope: `global`, or `platform/workspace`, whose
-- askers alone may see it. Its documents carry a content hash, so an
-- unchanged document is skipped on re-ingest; a document's chunks go with
-- it. A chunk's vector is the embedding model's output as little-endian
-- f32, NULL when the embedder was down at ingest (lexical search still
-- finds it; `knowledge sync` fills it in later).
CREATE TABLE knowledge_sources (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    scope      TEXT NOT NULL,
    -- The embedding model whose vectors the chunks hold.
    embedder   TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE knowledge_documents (
    id           TEXT PRIMARY KEY,
    source       TEXT NOT NULL REFERENCES knowledge_sources (name) ON DELETE CASCADE,
    -- The document's key in its source: a relative file path, a thread.
    doc_key      TEXT NOT NULL,
    title        TEXT NOT NULL,
    link         TEXT,
    content_hash TEXT NOT NULL,
    channel      TEXT,
    -- NULL: everyone in the source's scope; otherwise the only audience
    -- (the members of a private channel, `platform:channel`).
    audience     TEXT,
    author       TEXT,
    at_ms        INTEGER,
    updated_at   INTEGER NOT NULL,
    UNIQUE (source, doc_key)
);

CREATE TABLE knowledge_chunks (
    id          INTEGER PRIMARY KEY,
    document_id TEXT NOT NULL REFERENCES knowledge_documents (id) ON DELETE CASCADE,
    ord         INTEGER NOT NULL,
    heading     TEXT NOT NULL,
    anchor      TEXT,
    body        TEXT NOT NULL,
    tokens      INTEGER NOT NULL,
    embedding   BLOB
);
CREATE INDEX knowledge_chunks_document ON knowledge_chunks (document_id);

-- The lexical index: title, heading and body, Porter-stemmed; the source
-- is kept beside them (not indexed), so that a search of one source ranks
-- only its chunks.
CREATE VIRTUAL TABLE knowledge_fts USING fts5(title, body, source UNINDEXED, tokenize = 'porter unicode61');
CREATE TRIGGER knowledge_chunks_fts_insert AFTER INSERT ON knowledge_chunks BEGIN
    INSERT INTO knowledge_fts (rowid, title, body, source)
    SELECT new.id, d.title || ' ' || new.heading, new.body, d.source
      FROM knowledge_documents d WHERE d.id = new.document_id;
END;
CREATE TRIGGER knowledge_chunks_fts_delete AFTER DELETE ON knowledge_chunks BEGIN
    DELETE FROM knowledge_fts WHERE rowid = old.id;
END;

-- Bumped by every change to chunks, so that each replica's in-process
-- vector index knows when to reload.
CREATE TABLE knowledge_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO knowledge_state (id, generation) VALUES (1, 0);

-- What an answer retrieved: chunk ids, scores, sources and which it cited
-- (JSON), so that the dashboard can show them and slice feedback by source.
ALTER TABLE inferences ADD COLUMN retrieval TEXT;
