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
    PRIMARY KEY (goal_id, task_id),
    -- The seeds' worst failure: a task that left pending without an agent.
    CONSTRAINT task_past_pending_has_agent
        CHECK (status IN ('pending', 'skipped') OR agent_id IS NOT NULL)
);
CREATE INDEX IF NOT EXISTS tasks_goal_status ON tasks (goal_id, status);
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
-- An agent's inbox: its active assignments.
CREATE INDEX IF NOT EXISTS assignments_inbox ON assignments (agent_id) WHERE status = 'active';
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
