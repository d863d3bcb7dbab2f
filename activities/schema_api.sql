-- The HTTP API's own tables. Applied after schema_learning.sql; every statement is idempotent.

-- Personal API tokens: only a token's SHA-256 is kept, so the table never reveals one.
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id    uuid PRIMARY KEY,
    person      text NOT NULL CHECK (person <> ''),
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Every new event of a goal is announced on 'goalkeeper_events' as "GOAL_ID SEQ", so the
-- API's event streams read it at once. Kept small: listeners read the row by its seq.
CREATE OR REPLACE FUNCTION goalkeeper_notify_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('goalkeeper_events', NEW.goal_id || ' ' || NEW.seq);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS events_notify ON events;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.goal_id IS NOT NULL) EXECUTE FUNCTION goalkeeper_notify_event();
