-- An inference's messages move into its own row, as one JSON array of
-- {"direction", "role", "content"} in order: one tuple written per
-- inference instead of one per message (with its key and foreign-key
-- check), which is most of the cost of a busy recorder. Nothing queries
-- single messages; readers always take an inference's whole conversation.
ALTER TABLE inferences ADD COLUMN messages TEXT NOT NULL DEFAULT '[]';
UPDATE inferences SET messages = m.list
FROM (
    SELECT inference_id,
           json_agg(json_build_object('direction', direction, 'role', role, 'content', content)
                    ORDER BY position)::text AS list
    FROM inference_messages GROUP BY inference_id
) AS m
WHERE m.inference_id = inferences.id;
DROP TABLE inference_messages;
-- `feedback_current` (inference_id, user_id, kind) serves every lookup by
-- inference: this narrower index only cost a write per row.
DROP INDEX feedback_inference;
