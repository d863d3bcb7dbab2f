-- Agents' notes: what an agent says it is doing while it works ("searching 3 sources").
-- A note is a row of the goal's audit trail (kind 'agent_note'), so the goal's page and
-- its event stream show it as it comes, and no workflow history holds it. Only the agent
-- holding an active assignment may post on it, a line at a time and so many per
-- assignment; one past the limit is refused, and that is recorded once per assignment.

-- The longest note, and the most notes per assignment (goalkeeper/limits.py says the same).
CREATE OR REPLACE FUNCTION goalkeeper_note_limits(OUT chars integer, OUT per_assignment integer)
LANGUAGE sql IMMUTABLE AS 'SELECT 280, 50';

-- Counting an assignment's notes reads only its own.
CREATE INDEX IF NOT EXISTS events_agent_notes ON events ((detail->>'assignment_id'))
    WHERE kind = 'agent_note';
-- A goal's newest note (what an A2A status update says) without reading its whole trail.
CREATE INDEX IF NOT EXISTS events_goal_notes ON events (goal_id, seq) WHERE kind = 'agent_note';

-- Post a note for `agent` on `assignment`: its number (1, 2, ...), or NULL when the
-- assignment has all the notes it may (the refusal recorded once). Refused with an error:
-- a login posting for an agent it does not act for (insufficient_privilege), an
-- assignment that is not the agent's (no_data_found) or has ended
-- (object_not_in_prerequisite_state), an empty or too long note (invalid_parameter_value).
CREATE OR REPLACE FUNCTION goalkeeper_agent_note(agent text, assignment uuid, body text)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    login text := goalkeeper_restricted_login();
    limits record;
    held assignments;
    posted integer;
BEGIN
    SELECT * INTO limits FROM goalkeeper_note_limits();
    IF login IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM agents g WHERE g.agent_id = agent AND goalkeeper_acts_for(g)) THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('agent %L is not registered by login %s, which may not post '
                             'notes for it', agent, login);
    END IF;
    SELECT a.* INTO held FROM assignments a
    WHERE a.assignment_id = assignment AND a.agent_id = agent;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found',
            MESSAGE = format('agent %L holds no assignment %s: expected one of its own',
                             agent, assignment);
    END IF;
    IF held.status <> 'active' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('assignment %s is %s: expected an active one to post a note on',
                             assignment, held.status);
    END IF;
    IF body IS NULL OR btrim(body) = '' OR char_length(body) > limits.chars THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('a note of %s characters: expected 1 to %s characters of text',
                             coalesce(char_length(body), 0), limits.chars);
    END IF;
    -- One note at a time per assignment, so none slips past the count.
    PERFORM pg_advisory_xact_lock(hashtextextended('goalkeeper-note ' || assignment, 0));
    SELECT count(*) + 1 INTO posted FROM events e
    WHERE e.kind = 'agent_note' AND e.detail->>'assignment_id' = assignment::text;
    IF posted > limits.per_assignment THEN
        INSERT INTO events (event_id, goal_id, task_id, agent_id, kind, message, detail)
        VALUES (md5('goalkeeper-notes-full ' || assignment)::uuid, held.goal_id, held.task_id,
                agent, 'note_rejected',
                format('agent %L posted more than %s notes on attempt %s: the rest are refused',
                       agent, limits.per_assignment, held.attempt),
                jsonb_build_object('assignment_id', assignment, 'attempt', held.attempt,
                                   'limit', limits.per_assignment))
        ON CONFLICT (event_id) DO NOTHING;
        RETURN NULL;
    END IF;
    INSERT INTO events (event_id, goal_id, task_id, agent_id, kind, message, detail)
    VALUES (gen_random_uuid(), held.goal_id, held.task_id, agent, 'agent_note', body,
            jsonb_build_object('assignment_id', assignment, 'attempt', held.attempt,
                               'number', posted));
    RETURN posted;
END $$;

-- Agents' logins post through the function alone; it resolves names in this schema only.
DO $$
DECLARE
    here text := current_schema();
BEGIN
    EXECUTE format('ALTER FUNCTION goalkeeper_agent_note(text, uuid, text) '
                   'SET search_path = %I, pg_temp', here);
END $$;
REVOKE ALL ON FUNCTION goalkeeper_agent_note(text, uuid, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION goalkeeper_note_limits() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION goalkeeper_agent_note(text, uuid, text) TO goalkeeper_agent;
