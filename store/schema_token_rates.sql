-- Workspaces' token rates: a workspace may hold all its agents to so many tokens a minute
-- of one model provider, wherever the agents run (in processes and on machines of their
-- own, over PostgreSQL or the HTTP agent protocol). Each model call asks first through
-- goalkeeper_spend_tokens, which either records the spend in the ledger or says how long
-- to wait; the ledger keeps only the current window's spends.

-- A provider's limit in a workspace, set by an operator (`starter.py workspace
-- token-rate`). The window is a minute; only tests make it shorter.
CREATE TABLE IF NOT EXISTS token_rates (
    workspace          text NOT NULL,
    provider           text NOT NULL
                       CONSTRAINT token_rate_provider CHECK (provider ~ '^[a-z0-9][a-z0-9._-]{0,63}$'),
    tokens_per_minute  integer NOT NULL CONSTRAINT token_rate_positive CHECK (tokens_per_minute > 0),
    window_seconds     double precision NOT NULL DEFAULT 60
                       CONSTRAINT token_rate_window CHECK (window_seconds > 0 AND window_seconds <= 3600),
    set_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace, provider)
);

-- What was spent within the window, pruned as spends are asked for; cleared with its limit.
CREATE TABLE IF NOT EXISTS token_spends (
    workspace  text NOT NULL,
    provider   text NOT NULL,
    at         timestamptz NOT NULL,
    tokens     integer NOT NULL CONSTRAINT token_spend_positive CHECK (tokens > 0),
    FOREIGN KEY (workspace, provider) REFERENCES token_rates ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS token_spends_window ON token_spends (workspace, provider, at);

-- Spend `amount` tokens of `provider` for `agent`, under its workspace's limit: 0 when
-- granted (recorded) or when no limit is set, else the seconds until the window has room
-- (nothing recorded: ask again then). One caller at a time per limit (its row is locked),
-- on the database's clock, so every process and machine counts alike. Refused with an
-- error: a login asking for an agent it does not act for (insufficient_privilege), an
-- unknown agent (no_data_found), an amount below 1 or a provider name that no limit could
-- have (invalid_parameter_value), more than the whole limit (program_limit_exceeded).
CREATE OR REPLACE FUNCTION goalkeeper_spend_tokens(agent text, model_provider text, amount integer)
RETURNS double precision
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    spender agents;
    rate token_rates;
    moment timestamptz;
    used bigint;
    room_at timestamptz;
BEGIN
    IF amount IS NULL OR amount < 1 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('expected 1 or more tokens to spend, got %s', coalesce(amount::text, 'none'));
    END IF;
    IF model_provider IS NULL OR model_provider !~ '^[a-z0-9][a-z0-9._-]{0,63}$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('expected a provider name of 1 to 64 lowercase letters, digits, '
                             '''.'', ''_'' or ''-'', got %s characters',
                             coalesce(char_length(model_provider), 0));
    END IF;
    SELECT g.* INTO spender FROM agents g WHERE g.agent_id = agent;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = format('no agent %L: expected a registered agent', agent);
    END IF;
    IF NOT goalkeeper_acts_for(spender) THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('login %s may not spend tokens for agent %L, which it does not '
                             'act for', goalkeeper_restricted_login(), agent);
    END IF;
    SELECT r.* INTO rate FROM token_rates r
    WHERE r.workspace = spender.workspace AND r.provider = model_provider FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    IF amount > rate.tokens_per_minute THEN
        RAISE EXCEPTION USING ERRCODE = 'program_limit_exceeded',
            MESSAGE = format('a call of about %s tokens exceeds the limit of %s tokens a '
                             'minute of provider %L in workspace %L: it could never be made',
                             amount, rate.tokens_per_minute, rate.provider, rate.workspace);
    END IF;
    -- Read after the lock: a caller that waited for it counts from when it got it.
    moment := clock_timestamp();
    DELETE FROM token_spends s
    WHERE s.workspace = rate.workspace AND s.provider = rate.provider
      AND s.at <= moment - make_interval(secs => rate.window_seconds);
    SELECT coalesce(sum(s.tokens), 0) INTO used FROM token_spends s
    WHERE s.workspace = rate.workspace AND s.provider = rate.provider;
    IF used + amount <= rate.tokens_per_minute THEN
        INSERT INTO token_spends (workspace, provider, at, tokens)
        VALUES (rate.workspace, rate.provider, moment, amount);
        RETURN 0;
    END IF;
    -- The first spend whose leaving the window (with all before it) makes room.
    SELECT f.at INTO room_at FROM (
        SELECT s.at, sum(s.tokens) OVER (ORDER BY s.at ROWS UNBOUNDED PRECEDING) AS freed
        FROM token_spends s
        WHERE s.workspace = rate.workspace AND s.provider = rate.provider) f
    WHERE used - f.freed + amount <= rate.tokens_per_minute
    ORDER BY f.at LIMIT 1;
    RETURN greatest(extract(epoch FROM room_at + make_interval(secs => rate.window_seconds)
                                       - moment)::double precision, 0.001);
END $$;

-- Agents' logins spend through the function alone; it resolves names in this schema only.
DO $$
DECLARE
    here text := current_schema();
BEGIN
    EXECUTE format('ALTER FUNCTION goalkeeper_spend_tokens(text, text, integer) '
                   'SET search_path = %I, pg_temp', here);
END $$;
REVOKE ALL ON FUNCTION goalkeeper_spend_tokens(text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION goalkeeper_spend_tokens(text, text, integer) TO goalkeeper_agent;
