-- The asker's display name, as a chat platform gave it and a prompt may
-- have rendered it, so that an export can redact it (NULL when only the
-- id is known).
ALTER TABLE inferences ADD COLUMN user_name TEXT;
