-- Goalkeeper's own A2A tasks (it serving as an A2A agent): each task's latest state as the
-- protocol's Task, with the token that owns it and the request it follows, so a task
-- outlives the API process that made it and is followed again after a restart.

CREATE TABLE IF NOT EXISTS a2a_tasks (
    task_id     text PRIMARY KEY,
    token_id    text NOT NULL,
    person      text NOT NULL,
    workspace   text NOT NULL,
    request_id  text NOT NULL,
    goal_id     text,
    state       text NOT NULL,
    final       boolean NOT NULL DEFAULT false,
    task        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS a2a_tasks_running ON a2a_tasks (token_id) WHERE NOT final;
CREATE INDEX IF NOT EXISTS a2a_tasks_owner ON a2a_tasks (token_id, updated_at DESC);
