-- A key may let the OpenAI-compatible surface take its calls without an Idempotency-Key.
ALTER TABLE keys ADD COLUMN idempotency_optional BOOLEAN NOT NULL DEFAULT FALSE;
