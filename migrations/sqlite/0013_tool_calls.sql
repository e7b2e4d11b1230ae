-- Tools: the calls Switchboard ran for an answer (tool, arguments, result
-- size and whether it was cut, duration, error, approval), as a JSON array
-- in the answer's row; NULL when no tool ran. The calls a model asked a
-- client to make travel with the answer's message in `messages`.
ALTER TABLE inferences ADD COLUMN tool_calls TEXT;
