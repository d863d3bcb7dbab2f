-- Costs, feedback and improvement suggestions: what people see of spend and outcomes.
-- Applied after schema.sql; every statement is idempotent.

-- Costs are read from `assignments` (one row per attempt). These keep the reports bounded:
-- attempts since a day, an agent's record, and a goal's sub-goals (ids `ID/task/...`).
CREATE INDEX IF NOT EXISTS assignments_created ON assignments (created_at);
CREATE INDEX IF NOT EXISTS assignments_agent ON assignments (agent_id, created_at);
CREATE INDEX IF NOT EXISTS goals_subgoals ON goals (goal_id text_pattern_ops);

-- What people say about the work: a rating and a comment on a goal or one of its tasks,
-- and every approver's rejection (the comment that sent the work back).
CREATE TABLE IF NOT EXISTS feedback (
    feedback_id    uuid PRIMARY KEY,
    goal_id        text NOT NULL,
    task_id        text,                 -- NULL: about the whole goal
    assignment_id  uuid,                 -- the attempt whose work it is about, when known
    agent_id       text,                 -- that attempt's agent, when known
    person         text NOT NULL,
    rating         smallint CHECK (rating BETWEEN 1 AND 5),
    comment        text NOT NULL DEFAULT '',
    source         text NOT NULL CHECK (source IN ('person', 'rejection')),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS feedback_goal ON feedback (goal_id, created_at);
CREATE INDEX IF NOT EXISTS feedback_agent ON feedback (agent_id, created_at);

-- An approver's rejection is feedback on the attempt it sent back. The event's id is the
-- feedback's, so an event written twice (a retried activity) gives one row.
CREATE OR REPLACE FUNCTION goalkeeper_rejection_feedback() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    about uuid;  -- the attempt sent back
BEGIN
    -- Feedback must never stop the audit trail: a malformed detail only loses the row.
    BEGIN
        IF NEW.detail->>'assignment_id' ~* '^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$' THEN
            about := (NEW.detail->>'assignment_id')::uuid;
        END IF;
        INSERT INTO feedback (feedback_id, goal_id, task_id, assignment_id, agent_id, person,
                              rating, comment, source, created_at)
        VALUES (NEW.event_id, NEW.goal_id, NEW.task_id, about,
                coalesce((SELECT a.agent_id FROM assignments a
                          WHERE a.assignment_id = about), NEW.agent_id),
                NEW.detail->>'approver', NULL, coalesce(NEW.detail->>'comment', ''),
                'rejection', NEW.created_at)
        ON CONFLICT (feedback_id) DO NOTHING;
    EXCEPTION WHEN others THEN
        RAISE WARNING 'no feedback from event %: %', NEW.event_id, SQLERRM;
    END;
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS events_rejection_feedback ON events;
-- 'goalkeeper' is the engine itself rejecting when no approver decided in time: a lapse
-- of the approvers, not their judgement of the work.
CREATE TRIGGER events_rejection_feedback AFTER INSERT ON events
    FOR EACH ROW
    WHEN (NEW.kind IN ('decision_accepted', 'task_failed')
          AND NEW.goal_id IS NOT NULL
          AND NEW.detail->>'decision' = 'reject'
          AND coalesce(NEW.detail->>'approver', 'goalkeeper') <> 'goalkeeper')
    EXECUTE FUNCTION goalkeeper_rejection_feedback();

-- What Goalkeeper suggests after a goal ends, and what people decided about each. The id
-- is derived from the goal, kind and subject, so analysing a goal twice adds nothing.
CREATE TABLE IF NOT EXISTS suggestions (
    suggestion_id     uuid PRIMARY KEY,
    goal_id           text NOT NULL,
    kind              text NOT NULL,
    subject           text NOT NULL,
    message           text NOT NULL,
    action            text NOT NULL,
    evidence          jsonb NOT NULL DEFAULT '{}',
    status            text NOT NULL DEFAULT 'open'
                      CHECK (status IN ('open', 'accepted', 'dismissed')),
    decided_by        text,
    decided_at        timestamptz,
    decision_comment  text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT suggestion_decided_by_someone
        CHECK ((status = 'open') = (decided_by IS NULL AND decided_at IS NULL))
);
CREATE INDEX IF NOT EXISTS suggestions_status ON suggestions (status, created_at);
CREATE INDEX IF NOT EXISTS suggestions_subject ON suggestions (kind, subject);
