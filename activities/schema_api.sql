-- The HTTP API's own tables. Applied after schema_learning.sql; every statement is idempotent.

-- Personal API tokens: only a token's SHA-256 is kept, so the table never reveals one.
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id    uuid PRIMARY KEY,
    person      text NOT NULL CHECK (person <> ''),
    token_hash  text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
