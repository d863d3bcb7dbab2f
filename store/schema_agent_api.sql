-- Agents' own credentials for the HTTP agent protocol (/api/v1/agent/). Applied after
-- schema_api.sql; every statement is idempotent. Only a credential's SHA-256 is kept, so
-- the table never reveals one; each is bound to one agent (and so its workspace).
CREATE TABLE IF NOT EXISTS agent_credentials (
    credential_id    uuid PRIMARY KEY,
    agent_id         text NOT NULL REFERENCES agents ON DELETE CASCADE,
    credential_hash  text NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz
);
CREATE INDEX IF NOT EXISTS agent_credentials_agent ON agent_credentials (agent_id);
