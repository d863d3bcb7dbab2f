-- Agents' records per skill and what learns from them: agent choice, provisioning,
-- runbook success rates. Applied after schema_costs.sql; every statement is idempotent.

-- How each agent's attempts at a skill ended and what people said of them; kept by the
-- triggers below, read by assignment (goalkeeper/learning.py weighs it).
CREATE TABLE IF NOT EXISTS agent_records (
    agent_id               text NOT NULL REFERENCES agents ON DELETE CASCADE,
    skill                  text NOT NULL,
    first_tries            integer NOT NULL DEFAULT 0,
    first_try_completions  integer NOT NULL DEFAULT 0,
    completions            integer NOT NULL DEFAULT 0,
    failures               integer NOT NULL DEFAULT 0,
    lapses                 integer NOT NULL DEFAULT 0,
    reworks                integer NOT NULL DEFAULT 0,
    ratings_good           integer NOT NULL DEFAULT 0,
    ratings_bad            integer NOT NULL DEFAULT 0,
    updated_at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (agent_id, skill)
);
-- Provisioning looks up a skill's best agents.
CREATE INDEX IF NOT EXISTS agent_records_skill ON agent_records (skill);

-- The same formulas as AgentRecord in goalkeeper/learning.py (a test holds them equal).
CREATE OR REPLACE FUNCTION goalkeeper_record_successes(r agent_records) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT greatest(0, r.completions - r.reworks) + r.ratings_good
$$;
CREATE OR REPLACE FUNCTION goalkeeper_record_failures(r agent_records) RETURNS integer
LANGUAGE sql IMMUTABLE AS $$
    SELECT r.failures + r.lapses + r.reworks + r.ratings_bad
$$;
CREATE OR REPLACE FUNCTION goalkeeper_record_mean(r agent_records) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$
    SELECT (goalkeeper_record_successes(r) + 1)::float8
           / (goalkeeper_record_successes(r) + goalkeeper_record_failures(r) + 2)
$$;

-- An attempt's end, counted once: goalkeeper_end_assignment moves an assignment out of
-- 'active' or 'starting' only once, so a retried activity changes no count.
CREATE OR REPLACE FUNCTION goalkeeper_record_attempt() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO agent_records AS r (agent_id, skill, first_tries, first_try_completions,
                                    completions, failures, lapses)
    SELECT NEW.agent_id, t.skill, (NEW.attempt = 1)::int,
           (NEW.attempt = 1 AND NEW.status = 'completed')::int,
           (NEW.status = 'completed')::int, (NEW.status = 'failed')::int,
           (NEW.status = 'timed_out')::int
    FROM tasks t WHERE t.goal_id = NEW.goal_id AND t.task_id = NEW.task_id
    ON CONFLICT (agent_id, skill) DO UPDATE SET
        first_tries = r.first_tries + EXCLUDED.first_tries,
        first_try_completions = r.first_try_completions + EXCLUDED.first_try_completions,
        completions = r.completions + EXCLUDED.completions,
        failures = r.failures + EXCLUDED.failures,
        lapses = r.lapses + EXCLUDED.lapses,
        updated_at = now();
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER assignments_record_attempt
    AFTER UPDATE OF status ON assignments FOR EACH ROW
    WHEN (OLD.status IN ('active', 'starting')
          AND NEW.status IN ('completed', 'failed', 'timed_out'))
    EXECUTE FUNCTION goalkeeper_record_attempt();

-- What an agent works with (a model, a prompt, tools: whatever its runner reads), and
-- for a provisioned agent, the agent whose configuration it was given.
ALTER TABLE agents ADD COLUMN IF NOT EXISTS config jsonb NOT NULL DEFAULT '{}';
ALTER TABLE agents ADD COLUMN IF NOT EXISTS config_from text;

-- A provisioned agent starts with the configuration of the best-recorded agent for its
-- skill in its workspace: the highest posterior mean among records of at least
-- MIN_OBSERVATIONS_TO_COPY (goalkeeper/learning.py) observations.
CREATE OR REPLACE FUNCTION goalkeeper_copy_config() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    best record;
BEGIN
    SELECT g.agent_id, g.config INTO best
    FROM agents g JOIN agent_records r ON r.agent_id = g.agent_id
    WHERE g.workspace = NEW.workspace AND r.skill = NEW.skills[1]
      AND g.agent_id <> NEW.agent_id
      AND goalkeeper_record_successes(r) + goalkeeper_record_failures(r) >= 3
    ORDER BY goalkeeper_record_mean(r) DESC,
             goalkeeper_record_successes(r) + goalkeeper_record_failures(r) DESC, g.agent_id
    LIMIT 1;
    IF FOUND THEN
        NEW.config := best.config;
        NEW.config_from := best.agent_id;
    END IF;
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER agents_copy_config
    BEFORE INSERT ON agents FOR EACH ROW
    WHEN (NEW.provisioned AND NEW.config = '{}'::jsonb)
    EXECUTE FUNCTION goalkeeper_copy_config();

-- What people said of an attempt's work, counted once (a feedback row is written once):
-- an approver's rejection is a rework; a rating of 4 or 5 is good, 1 or 2 bad. Feedback
-- on a whole goal, or naming no known agent, is no agent's record.
CREATE OR REPLACE FUNCTION goalkeeper_record_feedback() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO agent_records AS r (agent_id, skill, reworks, ratings_good, ratings_bad)
    SELECT g.agent_id, t.skill, (NEW.source = 'rejection')::int,
           coalesce(NEW.rating >= 4, false)::int, coalesce(NEW.rating <= 2, false)::int
    FROM tasks t
    JOIN agents g ON g.agent_id = coalesce(
        NEW.agent_id,
        (SELECT a.agent_id FROM assignments a WHERE a.assignment_id = NEW.assignment_id))
    WHERE t.goal_id = NEW.goal_id AND t.task_id = NEW.task_id
      AND (NEW.source = 'rejection' OR NEW.rating IS NOT NULL)
    ON CONFLICT (agent_id, skill) DO UPDATE SET
        reworks = r.reworks + EXCLUDED.reworks,
        ratings_good = r.ratings_good + EXCLUDED.ratings_good,
        ratings_bad = r.ratings_bad + EXCLUDED.ratings_bad,
        updated_at = now();
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER feedback_record_agent
    AFTER INSERT ON feedback FOR EACH ROW
    EXECUTE FUNCTION goalkeeper_record_feedback();
