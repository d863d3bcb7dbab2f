-- What Goalkeeper's services may do when they log in as other roles than the schema's
-- owner (docker-compose.yml's `worker` and `api`, members of the NOLOGIN role
-- goalkeeper_worker, made by ops/postgres/roles.sh): read and write every row of the read
-- model and call its functions, but no DDL, no roles, no owning anything. Applied last, by
-- the owner; nothing happens where no such role exists (the embedded dev stack).

DO $$
DECLARE
    here text := current_schema();
BEGIN
    IF to_regrole('goalkeeper_worker') IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO goalkeeper_worker', here);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I '
                   'TO goalkeeper_worker', here);
    EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I '
                   'TO goalkeeper_worker', here);
    EXECUTE format('GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %I TO goalkeeper_worker', here);
END $$;
