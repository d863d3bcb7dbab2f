-- Least privilege: what an agent's PostgreSQL login may do. Applied last, by the worker,
-- which owns the schema; every statement is idempotent.
--
-- Agents log in as members of the NOLOGIN role goalkeeper_agent (`starter.py agent role
-- new NAME --workspace W` makes one). They get no table but two: they write only through
-- the functions below, which act, in the workspaces granted to the login (agent_logins),
-- for the agents their own login registered and for agents Goalkeeper provisioned there
-- (which agent.py --adopt-provisioned serves), and they read the results and
-- deliverables that their active assignments refer to. Nothing else: no DDL, no writes
-- to goals, tasks, events, keys, tokens or budgets, and no reading of them.

DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'goalkeeper_agent') THEN
        CREATE ROLE goalkeeper_agent NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object THEN NULL;  -- created meanwhile, for another database
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('role %I may not create roles, so agents cannot be given theirs',
                             current_user),
            HINT = 'As an administrator, run once: CREATE ROLE goalkeeper_agent NOLOGIN; '
                   'then start the worker again.';
END $$;

-- The login that registered an agent: only it may speak for the agent from then on.
ALTER TABLE agents ADD COLUMN IF NOT EXISTS login_role text;

-- The caller's login when it may act only for its own agents (it cannot write `agents`
-- itself, as the owner can); NULL for the owner, whom nothing here restricts.
CREATE OR REPLACE FUNCTION goalkeeper_restricted_login() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT session_user::text WHERE NOT has_table_privilege(session_user, 'agents', 'UPDATE')
$$;

-- The workspaces each agents' login serves, written by the owner (`starter.py agent role
-- new|grant`): a login registers, adopts and claims agents there and nowhere else. A login
-- without a row (made before workspaces were granted) serves none until it is granted some.
CREATE TABLE IF NOT EXISTS agent_logins (
    login       text PRIMARY KEY,
    workspaces  text[] NOT NULL
                CONSTRAINT agent_login_has_workspaces CHECK (cardinality(workspaces) > 0),
    granted_at  timestamptz NOT NULL DEFAULT now()
);

-- The most assignments at once an agents' login may give one agent: a login cannot claim
-- a workspace's work by registering one agent with endless capacity. The owner may set more.
CREATE OR REPLACE FUNCTION goalkeeper_login_capacity_limit() RETURNS integer
LANGUAGE sql IMMUTABLE AS 'SELECT 100';

-- The workspaces the calling agents' login serves (empty if none); NULL for the owner.
CREATE OR REPLACE FUNCTION goalkeeper_login_workspaces() RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT coalesce((SELECT l.workspaces FROM agent_logins l WHERE l.login = r.login), '{}')
    FROM (SELECT goalkeeper_restricted_login() AS login) r WHERE r.login IS NOT NULL
$$;

-- Whether the caller may act for agent `g`: the owner for any; a login for its own agents
-- and provisioned ones, in its workspaces only.
CREATE OR REPLACE FUNCTION goalkeeper_acts_for(g agents) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT goalkeeper_restricted_login() IS NULL
        OR (g.workspace = ANY(goalkeeper_login_workspaces())
            AND (g.provisioned OR g.login_role = goalkeeper_restricted_login()))
$$;

-- A workspace the calling login does not serve is refused, naming those it does.
CREATE OR REPLACE FUNCTION goalkeeper_check_login_workspace(ws text, agent text, doing text)
RETURNS void
LANGUAGE plpgsql STABLE AS $$
DECLARE
    served text[] := goalkeeper_login_workspaces();
BEGIN
    IF served IS NOT NULL AND NOT coalesce(ws = ANY(served), false) THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('agent %L: login %s may %s agents in workspace %s, got workspace %L',
                             agent, goalkeeper_restricted_login(), doing,
                             CASE WHEN cardinality(served) = 0
                                  THEN 'none (none is granted to it)'
                                  ELSE array_to_string(ARRAY(
                                      SELECT quote_literal(w) FROM unnest(served) w), ', ')
                             END, ws),
            HINT = 'An operator grants workspaces: starter.py agent role grant LOGIN '
                   '--workspace W';
    END IF;
END $$;

-- Add an agent or bring it back (see interfaces/agents/registry.py). A key and an
-- operator are set once: a different one is refused, for only an operator may replace
-- them. A login registers agents only in its workspaces, each with a capacity up to
-- goalkeeper_login_capacity_limit(): new agents and its own, and it claims one the owner
-- registered there (as agents were before logins); never another login's, nor one
-- Goalkeeper provisioned, nor one of another workspace (only the owner moves agents).
-- The event is written here, so a login cannot word it.
CREATE OR REPLACE FUNCTION goalkeeper_register_agent(
    agent text, ws text, skill_list text[], slots integer, settings jsonb,
    agent_key text DEFAULT NULL, operated_by text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    login text := goalkeeper_restricted_login();
    key_before text;
    kept agents;
BEGIN
    IF coalesce(cardinality(skill_list), 0) = 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('agent %L needs at least one skill, got none', agent);
    END IF;
    IF settings IS NOT NULL AND jsonb_typeof(settings) <> 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('agent %L config must be a JSON object, got %s', agent, settings);
    END IF;
    IF agent_key IS NOT NULL AND agent_key !~ '^[A-Za-z0-9+/]{43}=$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('agent %L: expected a base64 Ed25519 public key (32 bytes), '
                             'got %s characters', agent, length(agent_key));
    END IF;
    IF login IS NOT NULL THEN
        PERFORM goalkeeper_check_login_workspace(ws, agent, 'register');
        IF slots IS NULL OR slots NOT BETWEEN 1 AND goalkeeper_login_capacity_limit() THEN
            RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
                MESSAGE = format('agent %L: login %s may give an agent a capacity between 1 '
                                 'and %s, got capacity %s', agent, login,
                                 goalkeeper_login_capacity_limit(), slots);
        END IF;
    END IF;
    SELECT g.public_key INTO key_before FROM agents g WHERE g.agent_id = agent FOR UPDATE;
    INSERT INTO agents AS g (agent_id, workspace, skills, capacity, last_seen_at, config,
                             public_key, operator, login_role)
    VALUES (agent, ws, skill_list, slots, now(), coalesce(settings, '{}'), agent_key,
            operated_by, login)
    ON CONFLICT (agent_id) DO UPDATE SET
        workspace = CASE WHEN login IS NULL THEN EXCLUDED.workspace ELSE g.workspace END,
        skills = EXCLUDED.skills,
        capacity = greatest(EXCLUDED.capacity, g.active_assignments),
        status = CASE WHEN g.active_assignments > 0 THEN 'busy'::agent_status
                      ELSE 'available'::agent_status END,
        last_seen_at = now(),
        config = coalesce(settings, g.config),
        config_from = CASE WHEN settings IS NULL THEN g.config_from END,
        public_key = coalesce(g.public_key, EXCLUDED.public_key),
        operator = coalesce(g.operator, EXCLUDED.operator),
        login_role = coalesce(g.login_role, EXCLUDED.login_role)
    RETURNING g.* INTO kept;
    -- Checked on the row as written: a refusal undoes the write, and two logins
    -- registering one new agent at once cannot both pass.
    IF login IS NOT NULL AND kept.provisioned THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('agent %L was provisioned by Goalkeeper; serve it with '
                             'agent.py --adopt-provisioned instead of registering it', agent);
    END IF;
    IF login IS NOT NULL AND kept.login_role IS DISTINCT FROM login THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('agent %L belongs to another login (%s); login %s may not '
                             'register it', agent, kept.login_role, login);
    END IF;
    IF login IS NOT NULL AND kept.workspace IS DISTINCT FROM ws THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('agent %L is in workspace %L; login %s may register it there '
                             'only, got workspace %L (only an operator moves agents)',
                             agent, kept.workspace, login, ws);
    END IF;
    IF agent_key IS DISTINCT FROM kept.public_key AND agent_key IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('agent %L already has a key; only an operator may replace it '
                             '(starter.py agent rekey)', agent);
    END IF;
    IF operated_by IS DISTINCT FROM kept.operator AND operated_by IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('agent %L is operated by %L; only an operator may change that',
                             agent, kept.operator);
    END IF;
    PERFORM goalkeeper_event(jsonb_build_object(
        'event_id', gen_random_uuid(), 'kind', 'agent_registered', 'agent_id', agent,
        'message', format('agent %L registered in workspace %L with skills %s (capacity %s)%s',
                          agent, ws, array_to_string(skill_list, ', '), slots,
                          CASE WHEN agent_key IS NOT NULL AND key_before IS NULL
                               THEN ', with its key' ELSE '' END),
        'detail', jsonb_build_object('login', login, 'operator', kept.operator,
                                     'key_registered',
                                     agent_key IS NOT NULL AND key_before IS NULL)));
END $$;

-- Agents that stop taking work; a login may take only its own offline (in its
-- workspaces).
CREATE OR REPLACE FUNCTION goalkeeper_take_offline(agent_ids text[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    login text := goalkeeper_restricted_login();
    other text;
BEGIN
    SELECT g.agent_id INTO other FROM agents g
    WHERE g.agent_id = ANY(agent_ids) AND login IS NOT NULL
      AND (g.login_role IS DISTINCT FROM login OR NOT goalkeeper_acts_for(g))
    LIMIT 1;
    IF other IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('agent %L is not registered by login %s, which may not take it '
                             'offline', other, login);
    END IF;
    UPDATE agents SET status = 'offline' WHERE agent_id = ANY(agent_ids);
END $$;

-- Active assignments of the given agents, and of provisioned agents in `adopt_in`; a
-- login sees only those of its own agents and of provisioned ones, in its workspaces.
CREATE OR REPLACE FUNCTION goalkeeper_inbox(agent_ids text[], adopt_in text)
RETURNS TABLE (assignment_id text, goal_id text, task_id text, agent_id text,
               attempt integer, context jsonb, config jsonb)
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT a.assignment_id::text, a.goal_id, a.task_id, a.agent_id, a.attempt, a.context,
           g.config
    FROM assignments a JOIN agents g ON g.agent_id = a.agent_id
    WHERE a.status = 'active'
      AND (a.agent_id = ANY(agent_ids) OR (g.provisioned AND g.workspace = adopt_in))
      AND goalkeeper_acts_for(g)
    ORDER BY a.created_at
$$;

-- The agent still works on its assignment: write when (`sent_at`, the time the agent
-- signed, or now) and its signature; return the time written, or NULL when the agent no
-- longer holds the assignment. A time ahead of the database's clock is refused: it would
-- keep the work alive unheard.
CREATE OR REPLACE FUNCTION goalkeeper_heartbeat(
    agent text, assignment uuid, signature text DEFAULT NULL, sent_at timestamptz DEFAULT NULL)
RETURNS timestamptz
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    login text := goalkeeper_restricted_login();
    beat timestamptz := coalesce(sent_at, now());
BEGIN
    IF beat > now() + interval '1 minute' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('heartbeat of agent %L at %s is ahead of the database''s clock '
                             '(%s); check the agent''s clock', agent, beat, now());
    END IF;
    IF login IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM agents g WHERE g.agent_id = agent AND goalkeeper_acts_for(g)) THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('agent %L is not registered by login %s, which may not '
                             'heartbeat for it', agent, login);
    END IF;
    UPDATE assignments a SET last_heartbeat_at = beat, heartbeat_signature = signature
    WHERE a.assignment_id = assignment AND a.agent_id = agent AND a.status = 'active';
    RETURN CASE WHEN FOUND THEN beat END;
END $$;

-- A runner that adopts an agent Goalkeeper provisioned gives it a signing key, once: the
-- first key set is kept, and only an operator replaces it (starter.py agent rekey). A
-- login claims only agents provisioned in its workspaces. True if `agent_key` is the
-- agent's key now.
CREATE OR REPLACE FUNCTION goalkeeper_claim_provisioned(agent text, agent_key text)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    claimed agents;
BEGIN
    IF agent_key !~ '^[A-Za-z0-9+/]{43}=$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('agent %L: expected a base64 Ed25519 public key (32 bytes), '
                             'got %s characters', agent, length(agent_key));
    END IF;
    SELECT g.* INTO claimed FROM agents g WHERE g.agent_id = agent AND g.provisioned;
    IF FOUND THEN
        PERFORM goalkeeper_check_login_workspace(claimed.workspace, agent, 'claim provisioned');
    END IF;
    UPDATE agents SET public_key = agent_key
    WHERE agent_id = agent AND provisioned AND public_key IS NULL;
    IF FOUND THEN
        PERFORM goalkeeper_event(jsonb_build_object(
            'event_id', gen_random_uuid(), 'kind', 'key_registered', 'agent_id', agent,
            'message', format('provisioned agent %L was given a key by login %s', agent,
                              session_user)));
    END IF;
    RETURN EXISTS (SELECT 1 FROM agents WHERE agent_id = agent AND public_key = agent_key);
END $$;

-- Whether the calling login holds `assignment` (an agent of its own, or a provisioned
-- one), still active: it may store that assignment's result.
CREATE OR REPLACE FUNCTION goalkeeper_agent_holds(assignment uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT EXISTS (
        SELECT 1 FROM assignments a JOIN agents g ON g.agent_id = a.agent_id
        WHERE a.assignment_id = assignment AND a.status = 'active'
          AND goalkeeper_acts_for(g))
$$;

-- Store the result of an assignment the calling login holds, under a random id nobody
-- can take first (ids derived from the assignment could be), and return the id and the
-- content as stored. Agents write results only through here.
CREATE OR REPLACE FUNCTION goalkeeper_store_result(assignment uuid, content jsonb)
RETURNS TABLE (result_id uuid, body jsonb)
LANGUAGE plpgsql SECURITY DEFINER AS $$
#variable_conflict use_column
BEGIN
    IF NOT goalkeeper_agent_holds(assignment) THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('login %s may not store a result for assignment %s: expected '
                             'an active assignment of one of its agents', session_user,
                             assignment);
    END IF;
    RETURN QUERY
    INSERT INTO results AS r (result_id, assignment_id, body, bytes)
    VALUES (gen_random_uuid(), assignment, content, octet_length(content::text))
    RETURNING r.result_id, r.body;
END $$;

-- Whether an active assignment the calling login holds refers to `ref` (as a `$ref` in
-- its context) and may read it: a result of an earlier attempt at its own task, or what
-- a task of its goal counts as its result (checked when reported: stored for that
-- task's assignment), or the deliverable of its goal's sub-goal, which Goalkeeper put
-- there. A reference an agent wrote elsewhere (a rejected result, a goal's inputs)
-- reads nothing else.
CREATE OR REPLACE FUNCTION goalkeeper_agent_may_read(ref text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT EXISTS (
        SELECT 1 FROM assignments a JOIN agents g ON g.agent_id = a.agent_id
        WHERE a.status = 'active' AND goalkeeper_acts_for(g)
          AND jsonb_path_exists(a.context, '$.**."$ref" ? (@ == $ref)',
                                jsonb_build_object('ref', ref))
          AND (EXISTS (SELECT 1 FROM results r JOIN assignments o
                           ON o.assignment_id = r.assignment_id
                       WHERE r.result_id = CASE WHEN ref ~ '^results/[0-9a-f-]{36}$'
                                                THEN substr(ref, 9)::uuid END
                         AND o.goal_id = a.goal_id AND o.task_id = a.task_id)
               OR EXISTS (SELECT 1 FROM tasks t
                          WHERE t.goal_id = a.goal_id AND t.result->>'$ref' = ref
                            AND (ref LIKE 'results/%' OR ref = 'deliverables/' || t.subgoal_id))))
$$;

-- Row security narrows agents' logins alone; other roles keep what their grants give
-- (the owner is not subject to it).
ALTER TABLE results ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS results_by_grants ON results;
CREATE POLICY results_by_grants ON results USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS results_agent_reads ON results;
CREATE POLICY results_agent_reads ON results AS RESTRICTIVE FOR SELECT TO goalkeeper_agent
    USING (goalkeeper_agent_holds(assignment_id)
           OR goalkeeper_agent_may_read('results/' || result_id));
-- Agents write results only through goalkeeper_store_result.
DROP POLICY IF EXISTS results_agent_writes ON results;
ALTER TABLE deliverables ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS deliverables_by_grants ON deliverables;
CREATE POLICY deliverables_by_grants ON deliverables USING (true) WITH CHECK (true);
DROP POLICY IF EXISTS deliverables_agent_reads ON deliverables;
CREATE POLICY deliverables_agent_reads ON deliverables AS RESTRICTIVE FOR SELECT
    TO goalkeeper_agent USING (goalkeeper_agent_may_read('deliverables/' || goal_id));

-- Exactly these privileges, whatever was granted before; and functions that run with
-- the owner's rights resolve names in this schema only (never in a login's pg_temp).
DO $$
DECLARE
    here text := current_schema();
    f regprocedure;
BEGIN
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM goalkeeper_agent', here);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM goalkeeper_agent', here);
    FOR f IN SELECT p.oid FROM pg_proc p
             WHERE p.pronamespace = here::regnamespace AND p.proname LIKE 'goalkeeper\_%'
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC, goalkeeper_agent', f);
    END LOOP;
    FOR f IN SELECT p.oid FROM pg_proc p
             WHERE p.pronamespace = here::regnamespace AND p.prosecdef
               AND p.proname LIKE 'goalkeeper\_%'
    LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, here);
    END LOOP;
    -- Before PostgreSQL 15 everyone may create tables in `public`; agents never may.
    IF EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) acl
               WHERE n.nspname = here AND acl.privilege_type = 'CREATE'
                 AND acl.grantee IN (0, 'goalkeeper_agent'::regrole::oid)) THEN
        EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC, goalkeeper_agent', here);
    END IF;
    IF NOT has_schema_privilege('goalkeeper_agent', here, 'USAGE') THEN
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO goalkeeper_agent', here);
    END IF;
    IF NOT has_database_privilege('goalkeeper_agent', current_database(), 'CONNECT') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO goalkeeper_agent', current_database());
    END IF;
END $$;
GRANT SELECT ON results, deliverables TO goalkeeper_agent;
GRANT EXECUTE ON FUNCTION
    goalkeeper_register_agent(text, text, text[], integer, jsonb, text, text),
    goalkeeper_take_offline(text[]),
    goalkeeper_inbox(text[], text),
    goalkeeper_heartbeat(text, uuid, text, timestamptz),
    goalkeeper_claim_provisioned(text, text),
    goalkeeper_agent_holds(uuid),
    goalkeeper_agent_may_read(text),
    goalkeeper_store_result(uuid, jsonb)
    TO goalkeeper_agent;
