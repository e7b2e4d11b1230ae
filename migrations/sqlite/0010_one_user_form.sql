-- Users have one text form, `platform:id` (`slack:U0123`), so that the asker
-- stored with an answer and the voter stored with a vote compare equal and
-- the direct-message rule holds on every platform. Rows written before held
-- the platform's bare id for the asker (the dashboard's and admin tests'
-- askers were already `platform:id`), and for votes from the HTTP API, the
-- console and implicit signals; Slack and Discord votes were already
-- `slack:…` and `discord:…`.
UPDATE inferences SET user_id = platform || ':' || user_id
 WHERE user_id IS NOT NULL
   AND (platform IN ('slack', 'discord', 'http', 'console', 'eval') OR instr(user_id, ':') = 0);
UPDATE feedback SET user_id = 'http:' || user_id WHERE user_id IS NOT NULL AND source = 'api';
UPDATE feedback SET user_id = 'console:' || user_id WHERE user_id IS NOT NULL AND source = 'console';
UPDATE feedback SET user_id = (SELECT i.platform FROM inferences AS i WHERE i.id = feedback.inference_id) || ':' || user_id
 WHERE user_id IS NOT NULL AND source = 'implicit'
   AND EXISTS (SELECT 1 FROM inferences AS i WHERE i.id = feedback.inference_id);

-- Votes on answers that were not stored yet when the vote was written
-- (another replica answered a moment before, or the database was down):
-- no key to `inferences`; moved into `feedback` once the answer is stored.
CREATE TABLE feedback_pending (
    id TEXT PRIMARY KEY,
    inference_id TEXT NOT NULL,
    -- When the answer's id was made (Unix ms): the wait is counted from it.
    answer_made_at INTEGER NOT NULL,
    -- The vote, as the recorder spools it (JSON).
    record TEXT NOT NULL
);
CREATE INDEX feedback_pending_inference ON feedback_pending (inference_id);

-- The deployment's secret, shared by every replica on this database:
-- inference ids carry a tag keyed by it, so a replica recognises an id a
-- sibling minted a moment ago.
CREATE TABLE deployment (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO deployment (name, value) VALUES ('inference_id_secret', lower(hex(randomblob(32))));
