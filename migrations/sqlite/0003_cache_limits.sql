-- Caching and rate limits: what a cache hit saved. A hit's row keeps the
-- answer's own token counts (what the caller received) with cost_usd 0;
-- tokens_saved and cost_saved_usd say what was not paid again. Requests
-- refused by a limit are rows with status 'limited' and the message the
-- caller saw in error.

ALTER TABLE inferences ADD COLUMN tokens_saved BIGINT;
ALTER TABLE inferences ADD COLUMN cost_saved_usd DOUBLE PRECISION;
CREATE INDEX inferences_status ON inferences (status, created_at);
