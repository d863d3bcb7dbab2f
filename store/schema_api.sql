-- The HTTP API's own tables. Applied after schema_learning.sql; every statement is idempotent.

-- Personal API tokens: only a token's SHA-256 is kept, so the table never reveals one.
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id    uuid PRIMARY KEY,
    person      text NOT NULL CHECK (person <> ''),
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
-- The workspaces a token may see and act in: the ones it names, or every one when
-- all_workspaces (made only when asked for). Tokens made before workspaces were named
-- saw everything, as everyone could then: they keep all_workspaces, and 'token list' says so.
ALTER TABLE api_tokens ADD COLUMN IF NOT EXISTS workspaces text[] NOT NULL DEFAULT '{}';
ALTER TABLE api_tokens ADD COLUMN IF NOT EXISTS all_workspaces boolean;
UPDATE api_tokens SET all_workspaces = true WHERE all_workspaces IS NULL;
ALTER TABLE api_tokens ALTER COLUMN all_workspaces SET NOT NULL;
ALTER TABLE api_tokens ALTER COLUMN all_workspaces SET DEFAULT false;
ALTER TABLE api_tokens DROP CONSTRAINT IF EXISTS api_token_sees_something;
ALTER TABLE api_tokens ADD CONSTRAINT api_token_sees_something
    CHECK (all_workspaces OR (cardinality(workspaces) > 0 AND '' <> ALL (workspaces)));

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
