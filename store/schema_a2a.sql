-- A2A agents as members of a team: the card each was registered from, and the questions
-- they ask while working (A2A's input-required) with the answers approvers give.

CREATE TABLE IF NOT EXISTS a2a_agents (
    agent_id       text PRIMARY KEY REFERENCES agents ON DELETE CASCADE,
    url            text NOT NULL,
    card           jsonb NOT NULL,
    signed         boolean NOT NULL,
    registered_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS a2a_questions (
    question_id    uuid PRIMARY KEY,
    assignment_id  uuid NOT NULL,
    agent_id       text NOT NULL,
    goal_id        text NOT NULL,
    task_id        text NOT NULL,
    a2a_task_id    text NOT NULL,
    question       text NOT NULL,
    asked_at       timestamptz NOT NULL DEFAULT now(),
    answer         text,
    answered_by    text,
    answered_at    timestamptz,
    CONSTRAINT a2a_answer_whole CHECK ((answer IS NULL) = (answered_at IS NULL))
);
CREATE INDEX IF NOT EXISTS a2a_questions_open ON a2a_questions (goal_id, task_id)
    WHERE answered_at IS NULL;

-- The A2A task each assignment of an A2A agent became, while the bridge follows it: a
-- bridge that restarts follows it again instead of sending the work a second time.
CREATE TABLE IF NOT EXISTS a2a_member_tasks (
    assignment_id  uuid PRIMARY KEY,
    agent_id       text NOT NULL,
    a2a_task_id    text NOT NULL,
    sent_at        timestamptz NOT NULL DEFAULT now()
);
