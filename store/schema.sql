-- Goalkeeper's read model: goals, tasks, agents, assignments and the audit trail.
-- Applied by every worker at start; every statement is idempotent.
-- The enum types (agent_status, task_status, goal_status, assignment_status) are
-- created beforehand from the Python enums in goalkeeper/statuses.py.

CREATE TABLE IF NOT EXISTS goals (
    goal_id       text PRIMARY KEY,
    first_run_id  text NOT NULL,
    title         text NOT NULL,
    description   text NOT NULL DEFAULT '',
    workspace     text NOT NULL,
    approvers     text[] NOT NULL DEFAULT '{}',
    status        goal_status NOT NULL DEFAULT 'running',
    spec          jsonb NOT NULL,
    report        jsonb,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz
);

-- Specs too large to pass to Temporal inline: `starter.py goal start` stores them here
-- and starts the goal with {"spec_ref": "<spec_id>"}.
CREATE TABLE IF NOT EXISTS goal_specs (
    spec_id     uuid PRIMARY KEY,
    spec        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Each goal's compiled deliverable: a document of its tasks' results, in plan order.
CREATE TABLE IF NOT EXISTS deliverables (
    goal_id      text PRIMARY KEY REFERENCES goals ON DELETE CASCADE,
    goal_run_id  text NOT NULL,
    body         text NOT NULL,
    bytes        integer NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- Questions people asked: triaged into an answer, or a goal (`goal_id`).
CREATE TABLE IF NOT EXISTS requests (
    request_id    text PRIMARY KEY,
    first_run_id  text NOT NULL,
    question      text NOT NULL,
    workspace     text NOT NULL,
    spec          jsonb NOT NULL,
    status        request_status NOT NULL DEFAULT 'triaging',
    kind          text CHECK (kind IN ('answer', 'goal')),
    answer        text,
    goal_id       text,
    reason        text,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz
);

-- Runbooks: task templates, one row per version; `document` is what matching searches.
CREATE TABLE IF NOT EXISTS runbooks (
    name        text NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    title       text NOT NULL,
    tags        text[] NOT NULL DEFAULT '{}',
    body        jsonb NOT NULL,
    document    tsvector NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
CREATE INDEX IF NOT EXISTS runbooks_document ON runbooks USING gin (document);
-- A runbook's success history: the goals that used it.
CREATE INDEX IF NOT EXISTS goals_runbook ON goals ((spec->>'runbook'))
    WHERE spec->>'runbook' IS NOT NULL;

CREATE TABLE IF NOT EXISTS agents (
    agent_id            text PRIMARY KEY,
    workspace           text NOT NULL,
    skills              text[] NOT NULL,
    status              agent_status NOT NULL DEFAULT 'available',
    capacity            integer NOT NULL DEFAULT 1 CHECK (capacity > 0),
    active_assignments  integer NOT NULL DEFAULT 0,
    provisioned         boolean NOT NULL DEFAULT false,
    registered_at       timestamptz NOT NULL DEFAULT now(),
    last_seen_at        timestamptz,
    last_assigned_at    timestamptz,
    CONSTRAINT agent_within_capacity CHECK (active_assignments BETWEEN 0 AND capacity)
);
CREATE INDEX IF NOT EXISTS agents_pool ON agents USING gin (skills);
-- The goal an agent was provisioned for: it is retired once that goal has ended and it
-- holds no work.
ALTER TABLE agents ADD COLUMN IF NOT EXISTS provisioned_for text;

CREATE TABLE IF NOT EXISTS tasks (
    goal_id            text NOT NULL REFERENCES goals ON DELETE CASCADE,
    task_id            text NOT NULL,
    title              text NOT NULL,
    skill              text NOT NULL,
    requires_approval  boolean NOT NULL DEFAULT false,
    approvers          text[] NOT NULL DEFAULT '{}',
    depends_on         text[] NOT NULL DEFAULT '{}',
    status             task_status NOT NULL DEFAULT 'pending',
    agent_id           text REFERENCES agents,
    assignment_id      uuid,
    attempts           integer NOT NULL DEFAULT 0,
    reworks            integer NOT NULL DEFAULT 0,
    tokens_used        bigint NOT NULL DEFAULT 0,
    cost_usd           numeric(16, 6) NOT NULL DEFAULT 0,
    result             jsonb,
    error              text,
    started_at         timestamptz,
    ended_at           timestamptz,
    seq                integer NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    subgoal_id         text,
    PRIMARY KEY (goal_id, task_id),
    -- The seeds' worst failure: a task that left pending without an agent. A task that
    -- is a goal has none of its own: its sub-goal's tasks have theirs.
    CONSTRAINT task_past_pending_has_agent_or_goal
        CHECK (status IN ('pending', 'skipped') OR agent_id IS NOT NULL
               OR subgoal_id IS NOT NULL)
);
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS subgoal_id text;
DO $$ BEGIN  -- a read model from before sub-goals: the same rule, sub-goals allowed
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'task_past_pending_has_agent_or_goal') THEN
        ALTER TABLE tasks DROP CONSTRAINT IF EXISTS task_past_pending_has_agent;
        ALTER TABLE tasks ADD CONSTRAINT task_past_pending_has_agent_or_goal
            CHECK (status IN ('pending', 'skipped') OR agent_id IS NOT NULL
                   OR subgoal_id IS NOT NULL);
    END IF;
END $$;
-- A goal's tasks in plan order, with each task's spec: a goal of any size starts from here.
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS position integer;
ALTER TABLE tasks ADD COLUMN IF NOT EXISTS spec jsonb;
CREATE INDEX IF NOT EXISTS tasks_goal_status ON tasks (goal_id, status);
CREATE INDEX IF NOT EXISTS tasks_goal_position ON tasks (goal_id, position);
-- Approvers' inbox: what waits for whom.
CREATE INDEX IF NOT EXISTS tasks_awaiting_approval ON tasks USING gin (approvers)
    WHERE status = 'awaiting_approval';

CREATE TABLE IF NOT EXISTS assignments (
    assignment_id  uuid PRIMARY KEY,
    goal_id        text NOT NULL,
    task_id        text NOT NULL,
    agent_id       text NOT NULL REFERENCES agents,
    attempt        integer NOT NULL,
    status         assignment_status NOT NULL DEFAULT 'active',
    context        jsonb NOT NULL,
    result         jsonb,
    error          text,
    tokens_used    bigint NOT NULL DEFAULT 0,
    cost_usd       numeric(16, 6) NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    ended_at       timestamptz,
    FOREIGN KEY (goal_id, task_id) REFERENCES tasks ON DELETE CASCADE
);
-- Agents heartbeat here, outside workflow history; the task reads it when silence is due.
ALTER TABLE assignments ADD COLUMN IF NOT EXISTS last_heartbeat_at timestamptz;
-- An agent's inbox: its active assignments.
CREATE INDEX IF NOT EXISTS assignments_inbox ON assignments (agent_id) WHERE status = 'active';
-- Of tokens_used, those the model read and wrote, where the report said; and whether a
-- price was known for the attempt (false: its cost_usd of 0 is unknown, not free).
ALTER TABLE assignments ADD COLUMN IF NOT EXISTS input_tokens bigint CHECK (input_tokens >= 0);
ALTER TABLE assignments ADD COLUMN IF NOT EXISTS output_tokens bigint CHECK (output_tokens >= 0);
ALTER TABLE assignments ADD COLUMN IF NOT EXISTS cost_known boolean NOT NULL DEFAULT true;
-- An attempt's tool calls as its report recorded them (n: their order), its arguments
-- only by digest. Written with the assignment's end, once.
CREATE TABLE IF NOT EXISTS tool_calls (
    assignment_id  uuid NOT NULL REFERENCES assignments ON DELETE CASCADE,
    n              integer NOT NULL CHECK (n >= 1),
    tool           text NOT NULL,
    args_digest    text NOT NULL CHECK (args_digest ~ '^[0-9a-f]{64}$'),
    duration_ms    bigint NOT NULL CHECK (duration_ms >= 0),
    outcome        text NOT NULL CHECK (outcome IN ('success', 'failed', 'timeout')),
    error          text,
    PRIMARY KEY (assignment_id, n)
);
CREATE INDEX IF NOT EXISTS assignments_goal ON assignments (goal_id);

-- Results too large for workflow history; tasks carry {"$ref": "results/<id>"} instead.
CREATE TABLE IF NOT EXISTS results (
    result_id      uuid PRIMARY KEY,
    assignment_id  uuid NOT NULL,
    body           jsonb NOT NULL,
    bytes          integer NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS events (
    event_id    uuid PRIMARY KEY,
    seq         bigserial UNIQUE,
    goal_id     text,
    task_id     text,
    agent_id    text,
    kind        text NOT NULL,
    message     text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS events_goal ON events (goal_id, seq);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind, seq);
-- A running goal's added tasks (its page's progress), without reading its whole trail.
CREATE INDEX IF NOT EXISTS events_tasks_added ON events (goal_id) WHERE kind = 'tasks_added';

-- The audit trail is append-only: rows can be added, never changed or removed.
CREATE OR REPLACE FUNCTION events_are_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only: % is not allowed', TG_OP;
END $$;
DROP TRIGGER IF EXISTS events_append_only ON events;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_append_only();

-- The health check's findings: one open alert per problem until it is seen no more.
CREATE TABLE IF NOT EXISTS alerts (
    alert_id     uuid PRIMARY KEY,
    kind         text NOT NULL,
    subject      text NOT NULL,
    message      text NOT NULL,
    action       text NOT NULL DEFAULT '',
    repaired     boolean NOT NULL DEFAULT false,
    seen         integer NOT NULL DEFAULT 1,
    first_seen   timestamptz NOT NULL DEFAULT now(),
    last_seen    timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts (kind, subject) WHERE resolved_at IS NULL;

CREATE TABLE IF NOT EXISTS health_checks (
    check_id    bigserial PRIMARY KEY,
    checked_at  timestamptz NOT NULL DEFAULT now(),
    findings    integer NOT NULL,
    repaired    integer NOT NULL
);

-- Progress for dashboards, the same figures as the goal workflow's `progress` query.
CREATE OR REPLACE VIEW goal_progress AS
SELECT
    g.goal_id,
    g.workspace,
    g.status,
    count(t.task_id) AS tasks_total,
    count(t.task_id) FILTER (WHERE t.status = 'completed') AS tasks_completed,
    count(t.task_id) FILTER (WHERE t.status = 'failed') AS tasks_failed,
    count(t.task_id) FILTER (WHERE t.status = 'skipped') AS tasks_skipped,
    count(t.task_id) FILTER (WHERE t.status = 'assigned') AS tasks_running,
    count(t.task_id) FILTER (WHERE t.status = 'awaiting_approval') AS tasks_awaiting_approval,
    count(t.task_id) FILTER (WHERE t.status = 'pending') AS tasks_pending,
    CASE WHEN count(t.task_id) = 0 THEN 0.0
         ELSE round(100.0 * count(t.task_id) FILTER (WHERE t.status = 'completed')
                    / count(t.task_id), 1)::float8
    END AS progress_percentage,
    (SELECT count(DISTINCT a.agent_id) FROM assignments a WHERE a.goal_id = g.goal_id)
        AS agents_total,
    count(DISTINCT t.agent_id) FILTER (WHERE t.status = 'completed') AS agents_completed,
    coalesce(sum(t.cost_usd), 0)::float8 AS cost_usd,
    coalesce(sum(t.tokens_used), 0)::bigint AS tokens_used
FROM goals g
LEFT JOIN tasks t ON t.goal_id = g.goal_id
GROUP BY g.goal_id;

-- Budgets. A goal's raised budget (NULL: its spec's), and what its attempts and its
-- sub-goals' have cost so far, counted as attempts end so no assignment sums them.
ALTER TABLE goals ADD COLUMN IF NOT EXISTS budget_usd numeric(16, 6);
ALTER TABLE goals ADD COLUMN IF NOT EXISTS budget_tokens bigint;
ALTER TABLE goals ADD COLUMN IF NOT EXISTS spent_usd numeric(16, 6) NOT NULL DEFAULT 0;
ALTER TABLE goals ADD COLUMN IF NOT EXISTS spent_tokens bigint NOT NULL DEFAULT 0;
-- What stops a running goal right now (a wedged workflow, a stall) and what to do; set and
-- cleared by the watch.
ALTER TABLE goals ADD COLUMN IF NOT EXISTS problem text;

-- Workspaces' monthly budgets and this month's spend (counted only where one is set).
CREATE TABLE IF NOT EXISTS workspace_budgets (
    workspace       text PRIMARY KEY,
    monthly_usd     numeric(16, 6) CHECK (monthly_usd > 0),
    monthly_tokens  bigint CHECK (monthly_tokens > 0),
    month           date NOT NULL DEFAULT date_trunc('month', now())::date,
    spent_usd       numeric(16, 6) NOT NULL DEFAULT 0,
    spent_tokens    bigint NOT NULL DEFAULT 0,
    alerted         boolean NOT NULL DEFAULT false,
    set_by          text NOT NULL,
    set_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT workspace_budget_has_amount
        CHECK (monthly_usd IS NOT NULL OR monthly_tokens IS NOT NULL)
);

-- A goal and the goals it runs for, up to the one people started.
CREATE OR REPLACE FUNCTION goalkeeper_goal_line(goal text) RETURNS TABLE (id text)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE line(id, parent, depth) AS (
        SELECT g.goal_id, g.spec->'parent'->>'goal_id', 0 FROM goals g WHERE g.goal_id = goal
        UNION ALL
        SELECT p.goal_id, p.spec->'parent'->>'goal_id', line.depth + 1
        FROM goals p JOIN line ON p.goal_id = line.parent
        WHERE line.depth < 10)
    SELECT line.id FROM line
$$;

-- Why no new assignment may start for the goal, and whose budget it is (`scope`: a goal
-- id, or 'workspace:' and its name): it, a goal it runs for, or its workspace has spent
-- its budget. No row when it may.
DROP FUNCTION IF EXISTS goalkeeper_budget_refusal(text, text);
CREATE OR REPLACE FUNCTION goalkeeper_budget_hold(goal text, ws text)
RETURNS TABLE (scope text, reason text) LANGUAGE sql STABLE AS $$
    (SELECT g.goal_id,
            format('goal %L has spent its budget: $%s of $%s, %s of %s tokens',
                   g.goal_id, round(g.spent_usd, 4),
                   coalesce(round(b.usd, 4)::text, 'no limit'), g.spent_tokens,
                   coalesce(b.tokens::text, 'no limit'))
     FROM goals g
     CROSS JOIN LATERAL (SELECT coalesce(g.budget_usd, (g.spec->>'budget_usd')::numeric) usd,
                                coalesce(g.budget_tokens, (g.spec->>'budget_tokens')::bigint)
                                    tokens) b
     WHERE g.goal_id IN (SELECT id FROM goalkeeper_goal_line(goal)) AND g.status = 'running'
       AND (g.spent_usd >= b.usd OR g.spent_tokens >= b.tokens)
     LIMIT 1)
    UNION ALL
    (SELECT 'workspace:' || w.workspace,
            format('workspace %L has spent its monthly budget: $%s of $%s, %s of %s tokens',
                   w.workspace, round(w.spent_usd, 4),
                   coalesce(round(w.monthly_usd, 4)::text, 'no limit'), w.spent_tokens,
                   coalesce(w.monthly_tokens::text, 'no limit'))
     FROM workspace_budgets w
     WHERE w.workspace = ws AND w.month = date_trunc('month', now())::date
       AND (w.spent_usd >= w.monthly_usd OR w.spent_tokens >= w.monthly_tokens))
    LIMIT 1
$$;

-- What an agent may still spend on the goal: the least left of every budget over it.
CREATE OR REPLACE FUNCTION goalkeeper_budget_left(goal text, ws text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    WITH left_over AS (
        SELECT coalesce(g.budget_usd, (g.spec->>'budget_usd')::numeric) - g.spent_usd usd,
               coalesce(g.budget_tokens, (g.spec->>'budget_tokens')::bigint) - g.spent_tokens
                   tokens
        FROM goals g WHERE g.goal_id IN (SELECT id FROM goalkeeper_goal_line(goal))
          AND g.status = 'running'
        UNION ALL
        SELECT w.monthly_usd - CASE WHEN w.month = date_trunc('month', now())::date
                                    THEN w.spent_usd ELSE 0 END,
               w.monthly_tokens - CASE WHEN w.month = date_trunc('month', now())::date
                                       THEN w.spent_tokens ELSE 0 END
        FROM workspace_budgets w WHERE w.workspace = ws)
    SELECT jsonb_build_object(
        'usd_left', CASE WHEN min(usd) IS NOT NULL THEN greatest(min(usd), 0)::float8 END,
        'tokens_left', CASE WHEN min(tokens) IS NOT NULL THEN greatest(min(tokens), 0) END)
    FROM left_over
$$;

-- Count an ended attempt's spend against the goals over it that have a budget (its own,
-- those it runs for; others' rows are left alone, so no goal's row is a queue) and its
-- workspace's month; the workspace's first pass of 80% of its budget is an alert.
CREATE OR REPLACE FUNCTION goalkeeper_count_spend(goal text, spent_tokens bigint,
                                                  spent_usd numeric)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    this_month date := date_trunc('month', now())::date;
    tokens bigint := coalesce(spent_tokens, 0);
    cost numeric := coalesce(spent_usd, 0);
    w workspace_budgets;
BEGIN
    IF tokens = 0 AND cost = 0 THEN
        RETURN;
    END IF;
    UPDATE goals g SET spent_usd = g.spent_usd + cost, spent_tokens = g.spent_tokens + tokens
    WHERE g.goal_id IN (SELECT id FROM goalkeeper_goal_line(goal))
      AND (g.spec->>'budget_usd' IS NOT NULL OR g.spec->>'budget_tokens' IS NOT NULL);
    UPDATE workspace_budgets b SET
        spent_usd = CASE WHEN b.month = this_month THEN b.spent_usd ELSE 0 END + cost,
        spent_tokens = CASE WHEN b.month = this_month THEN b.spent_tokens ELSE 0 END + tokens,
        alerted = b.month = this_month AND b.alerted,
        month = this_month
    WHERE b.workspace = (SELECT workspace FROM goals WHERE goal_id = goal)
    RETURNING b.* INTO w;
    IF w.workspace IS NOT NULL AND NOT w.alerted
       AND (w.spent_usd >= 0.8 * w.monthly_usd OR w.spent_tokens >= 0.8 * w.monthly_tokens) THEN
        UPDATE workspace_budgets SET alerted = true WHERE workspace = w.workspace;
        INSERT INTO alerts (alert_id, kind, subject, message, action)
        VALUES (gen_random_uuid(), 'workspace_budget', w.workspace || ' ' || this_month,
                format('workspace %L has spent $%s of its monthly $%s and %s of %s tokens',
                       w.workspace, round(w.spent_usd, 4), coalesce(w.monthly_usd::text, '-'),
                       w.spent_tokens, coalesce(w.monthly_tokens::text, '-')),
                'raise it with `starter.py budget set --workspace ' || w.workspace
                    || '`, or expect its goals to pause at 100%')
        ON CONFLICT (kind, subject) WHERE resolved_at IS NULL DO NOTHING;
        INSERT INTO events (event_id, goal_id, kind, message, detail)
        VALUES (md5('workspace budget alert/' || w.workspace || '/' || this_month || '/'
                    || w.set_at)::uuid,
                goal, 'budget_alert',
                format('workspace %L has spent 80%% of its monthly budget', w.workspace),
                jsonb_build_object('workspace', w.workspace, 'spent_usd', w.spent_usd,
                                   'spent_tokens', w.spent_tokens))
        ON CONFLICT (event_id) DO NOTHING;
    END IF;
END $$;

-- Writes that each take one round trip: a retried activity repeats them harmlessly.

-- Append an event once: a retried activity carries the same event_id.
CREATE OR REPLACE FUNCTION goalkeeper_event(e jsonb) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO events (event_id, goal_id, task_id, agent_id, kind, message, detail)
    SELECT (e->>'event_id')::uuid, e->>'goal_id', e->>'task_id', e->>'agent_id',
           e->>'kind', e->>'message', coalesce(e->'detail', '{}')
    WHERE e IS NOT NULL AND jsonb_typeof(e) = 'object'
    ON CONFLICT (event_id) DO NOTHING
$$;

-- Store a task's state unless a newer one (higher seq) is stored, or the task belongs to
-- another run of the goal (a goal id reused while an old task workflow still runs).
-- `force` overwrites an older-or-equal row: the health check re-projecting a workflow.
CREATE OR REPLACE FUNCTION goalkeeper_write_task(t jsonb, force boolean DEFAULT false)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks SET
        status = (t->>'status')::task_status, agent_id = t->>'agent_id',
        subgoal_id = coalesce(t->>'subgoal_id', tasks.subgoal_id),
        assignment_id = (t->>'assignment_id')::uuid, attempts = (t->>'attempts')::int,
        reworks = (t->>'reworks')::int, tokens_used = (t->>'tokens_used')::bigint,
        cost_usd = (t->>'cost_usd')::numeric,
        result = CASE WHEN t ? 'result' THEN t->'result' ELSE tasks.result END,
        error = t->>'error',
        started_at = coalesce((t->>'started_at')::timestamptz, tasks.started_at),
        ended_at = (t->>'ended_at')::timestamptz, seq = (t->>'seq')::int, updated_at = now()
    WHERE goal_id = t->>'goal_id' AND task_id = t->>'task_id'
      AND (seq < (t->>'seq')::int OR (force AND seq <= (t->>'seq')::int))
      AND (coalesce(t->>'goal_run_id', '') = ''
           OR EXISTS (SELECT 1 FROM goals g WHERE g.goal_id = t->>'goal_id'
                      AND g.first_run_id = t->>'goal_run_id'));
    RETURN FOUND;
END $$;

-- Give one task attempt an agent: the least loaded that has the skill, else a new one.
-- Assignments for one skill in one workspace take turns (an advisory lock of that skill
-- alone), so assignments for other skills never wait for them; the capacity CHECK
-- means no slot is ever given twice.
CREATE OR REPLACE FUNCTION goalkeeper_assign(r jsonb)
RETURNS TABLE (agent_id text, provisioned boolean) LANGUAGE plpgsql AS $$
DECLARE
    chosen text;
    fresh boolean := false;
    context jsonb;
    refusal text;
    held_by text;
BEGIN
    SELECT a.agent_id INTO chosen FROM assignments a
    WHERE a.assignment_id = (r->>'assignment_id')::uuid;
    IF FOUND THEN  -- a retry of an attempt that already committed
        RETURN QUERY SELECT chosen, false;
        RETURN;
    END IF;
    SELECT h.scope, h.reason INTO held_by, refusal
    FROM goalkeeper_budget_hold(r->>'goal_id', r->>'workspace') h;
    IF refusal IS NOT NULL THEN  -- the caller waits for a raise; nothing is assigned
        RAISE EXCEPTION USING ERRCODE = 'GK402', MESSAGE = refusal, DETAIL = held_by;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('goalkeeper-assign:' || (r->>'workspace') || '/'
                                           || (r->>'skill')));
    SELECT g.agent_id INTO chosen FROM agents g
    WHERE g.workspace = r->>'workspace' AND g.skills @> ARRAY[r->>'skill']
      AND g.status IN ('available', 'busy') AND g.active_assignments < g.capacity
      AND NOT g.agent_id = ANY(ARRAY(SELECT jsonb_array_elements_text(r->'exclude_agent_ids')))
    ORDER BY g.agent_id = r->>'prefer_agent_id' DESC NULLS LAST,
             g.active_assignments::float / g.capacity, g.last_assigned_at NULLS FIRST,
             g.agent_id
    LIMIT 1
    FOR UPDATE;
    IF chosen IS NULL THEN
        chosen := r->>'provision_id';
        fresh := true;
        INSERT INTO agents (agent_id, workspace, skills, status, capacity, provisioned,
                            provisioned_for)
        VALUES (chosen, r->>'workspace', ARRAY[r->>'skill'], 'available', 1, true,
                r->>'goal_id');
        PERFORM goalkeeper_event(r->'provision_event' || jsonb_build_object('agent_id', chosen));
    END IF;
    UPDATE agents g SET active_assignments = g.active_assignments + 1, status = 'busy',
           last_assigned_at = now()
    WHERE g.agent_id = chosen;
    SELECT jsonb_build_object(
        'goal', (SELECT jsonb_build_object('goal_id', goal_id, 'title', title,
                                           'description', description,
                                           'guidance', coalesce(spec->>'guidance', ''),
                                           'runbook', spec->>'runbook',
                                           'runbook_version', spec->'runbook_version',
                                           'plan', (SELECT p.result FROM tasks p
                                                    WHERE p.goal_id = goals.goal_id
                                                      AND p.task_id = 'plan'
                                                      AND p.spec->>'expects' = 'plan'
                                                      AND p.status = 'completed'))
                 FROM goals WHERE goal_id = r->>'goal_id'),
        'task', t.spec,
        'attempt', (r->>'attempt')::int,
        'dependency_results', (SELECT coalesce(jsonb_object_agg(d.task_id, d.result), '{}')
                               FROM tasks d WHERE d.goal_id = t.goal_id
                                 AND d.task_id = ANY(t.depends_on)),
        'rework', (SELECT coalesce(jsonb_agg(w || jsonb_build_object('previous_result',
                                (SELECT p.result FROM assignments p
                                 WHERE p.assignment_id = (w->>'assignment_id')::uuid))), '[]')
                   FROM jsonb_array_elements(r->'rework') w),
        'budget', goalkeeper_budget_left(r->>'goal_id', r->>'workspace'),
        'report_deadline_seconds', (r->>'report_deadline_seconds')::int,
        'heartbeat_timeout_seconds', (r->>'heartbeat_timeout_seconds')::int,
        'traceparent', r->>'traceparent')
    INTO context
    FROM tasks t WHERE t.goal_id = r->>'goal_id' AND t.task_id = r->>'task_id';
    -- An assignment made before its task workflow starts stays hidden from the agent
    -- until the workflow exists to hear the report (goalkeeper_activate).
    INSERT INTO assignments (assignment_id, goal_id, task_id, agent_id, attempt, context,
                             status)
    VALUES ((r->>'assignment_id')::uuid, r->>'goal_id', r->>'task_id', chosen,
            (r->>'attempt')::int, coalesce(context, '{}'),
            CASE WHEN (r->>'deferred')::boolean THEN 'starting' ELSE 'active' END
                ::assignment_status);
    PERFORM goalkeeper_write_task(jsonb_build_object(
        'goal_id', r->>'goal_id', 'goal_run_id', r->>'goal_run_id', 'task_id', r->>'task_id',
        'status', 'assigned', 'agent_id', chosen, 'assignment_id', r->>'assignment_id',
        'attempts', (r->>'attempt')::int, 'reworks', coalesce(t.reworks, 0),
        'tokens_used', coalesce(t.tokens_used, 0), 'cost_usd', coalesce(t.cost_usd, 0),
        'started_at', now(), 'seq', (r->>'seq')::int))
    FROM tasks t WHERE t.goal_id = r->>'goal_id' AND t.task_id = r->>'task_id';
    PERFORM goalkeeper_event(jsonb_build_object(
        'event_id', r->>'assignment_id', 'kind', 'task_assigned', 'goal_id', r->>'goal_id',
        'task_id', r->>'task_id', 'agent_id', chosen,
        'message', format('task %L assigned to agent %L (attempt %s)',
                          r->>'task_id', chosen, r->>'attempt'),
        'detail', jsonb_build_object('assignment_id', r->>'assignment_id',
                                     'provisioned', fresh)));
    IF NOT coalesce((r->>'deferred')::boolean, false) THEN
        PERFORM pg_notify('goalkeeper_assignments', chosen);
    END IF;
    RETURN QUERY SELECT chosen, fresh;
END $$;

-- Free one of the agent's slots; an idle agent that was busy becomes available.
-- Retire idle agents provisioned for goals that have ended: those of one goal as it
-- ends, or one agent as it frees its last slot. Each retirement is recorded.
-- (plpgsql: its body is parsed when first run, after the 'retired' status is committed.)
CREATE OR REPLACE FUNCTION goalkeeper_retire(for_goal text, agent text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    WITH retired AS (
        UPDATE agents g SET status = 'retired'
        WHERE g.provisioned_for IS NOT NULL AND g.active_assignments = 0
          AND g.status <> 'retired'
          AND (for_goal IS NULL OR g.provisioned_for = for_goal)
          AND (agent IS NULL OR g.agent_id = agent)
          AND EXISTS (SELECT 1 FROM goals o WHERE o.goal_id = g.provisioned_for
                                              AND o.status <> 'running')
        RETURNING g.agent_id, g.provisioned_for)
    INSERT INTO events (event_id, goal_id, agent_id, kind, message)
    SELECT gen_random_uuid(), provisioned_for, agent_id, 'agent_retired',
           format('agent %L retired: provisioned for goal %L, which has ended, and idle',
                  retired.agent_id, provisioned_for)
    FROM retired;
END $$;

CREATE OR REPLACE FUNCTION goalkeeper_release(agent text) RETURNS void
LANGUAGE sql AS $$
    UPDATE agents SET active_assignments = active_assignments - 1,
           status = CASE WHEN status = 'busy' AND active_assignments = 1
                         THEN 'available'::agent_status ELSE status END
    WHERE agent_id = agent AND active_assignments > 0;
    SELECT goalkeeper_retire(NULL, agent);
$$;

-- Close an assignment with its outcome, free the agent's slot (only the call that closes
-- it, so a retry never frees it twice), record the task and the event.
CREATE OR REPLACE FUNCTION goalkeeper_end_assignment(r jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    agent text;
    goal text;
BEGIN
    UPDATE assignments SET status = (r->>'status')::assignment_status, result = r->'result',
           error = r->>'error', tokens_used = (r->>'tokens_used')::bigint,
           cost_usd = (r->>'cost_usd')::numeric, ended_at = now(),
           input_tokens = (r->>'input_tokens')::bigint,
           output_tokens = (r->>'output_tokens')::bigint,
           cost_known = coalesce((r->>'cost_known')::boolean, true)
    WHERE assignment_id = (r->>'assignment_id')::uuid AND status IN ('active', 'starting')
    RETURNING agent_id, goal_id INTO agent, goal;
    IF agent IS NOT NULL THEN
        INSERT INTO tool_calls (assignment_id, n, tool, args_digest, duration_ms, outcome, error)
        SELECT (r->>'assignment_id')::uuid, c.n, c.call->>'tool', c.call->>'args_digest',
               (c.call->>'duration_ms')::bigint, c.call->>'outcome', c.call->>'error'
        FROM jsonb_array_elements(coalesce(r->'tool_calls', '[]'::jsonb))
             WITH ORDINALITY AS c(call, n)
        ON CONFLICT (assignment_id, n) DO NOTHING;
        PERFORM goalkeeper_release(agent);
        PERFORM goalkeeper_count_spend(goal, (r->>'tokens_used')::bigint,
                                       (r->>'cost_usd')::numeric);
        IF r->>'status' = 'timed_out' THEN
            UPDATE agents SET status = 'unresponsive'
            WHERE agent_id = agent AND status <> 'retired';
        END IF;
    END IF;
    PERFORM goalkeeper_write_task(r->'task');
    PERFORM goalkeeper_event(r->'event');
END $$;

-- The task workflow has started: its agent may now see the assignment, and is woken.
CREATE OR REPLACE FUNCTION goalkeeper_activate(id uuid) RETURNS void
LANGUAGE sql AS $$
    WITH started AS (
        UPDATE assignments SET status = 'active'
        WHERE assignment_id = id AND status = 'starting' RETURNING agent_id)
    SELECT pg_notify('goalkeeper_assignments', agent_id) FROM started
$$;
