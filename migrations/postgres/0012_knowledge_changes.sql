-- What each knowledge generation changed, so that a replica's in-process
-- vector index reads only the documents that changed instead of every
-- vector again. `document_id` NULL: everything is read again (a source
-- removed, vectors stored later, another embedding model). Rows older than
-- the last 10,000 generations are pruned; an index older than that reloads.
CREATE TABLE knowledge_changes (
    generation  BIGINT NOT NULL,
    document_id TEXT,
    added       BIGINT NOT NULL
);
CREATE INDEX knowledge_changes_generation ON knowledge_changes (generation);
