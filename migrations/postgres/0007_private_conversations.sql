-- Direct messages: only the person the bot was talking to may leave
-- feedback on those answers (1 = a direct message).
ALTER TABLE inferences ADD COLUMN private BIGINT NOT NULL DEFAULT 0;
