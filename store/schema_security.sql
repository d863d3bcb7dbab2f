-- Who may speak for an agent or an approver: their Ed25519 public keys (raw 32 bytes,
-- base64), and who operates each agent (an approver may not approve their own agent's work).
ALTER TABLE agents ADD COLUMN IF NOT EXISTS public_key text;
ALTER TABLE agents ADD COLUMN IF NOT EXISTS operator text;

CREATE TABLE IF NOT EXISTS approver_keys (
    approver     text PRIMARY KEY,
    public_key   text NOT NULL,
    -- A delegate key (the dashboard's) signs decisions on behalf of the people it names.
    delegate     boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    replaced_at  timestamptz
);

-- An agent's heartbeat written to PostgreSQL carries its signature over (agent,
-- assignment, time): a heartbeat written by anyone else does not keep the work alive.
ALTER TABLE assignments ADD COLUMN IF NOT EXISTS heartbeat_signature text;
