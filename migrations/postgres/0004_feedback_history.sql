-- One vote per user per inference, with history: a changed thumbs vote
-- marks the earlier row as replaced (by the new row's id) instead of
-- deleting it.
ALTER TABLE feedback ADD COLUMN replaced_by TEXT;
CREATE INDEX feedback_current ON feedback (inference_id, user_id, kind);
