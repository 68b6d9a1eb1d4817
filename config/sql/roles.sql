-- Least-privilege database roles for gdpr-daemon.
--
-- Run it as the owner of the tables (the role that runs `gdpr-daemon migrate`), in the
-- gdpr-daemon database, after `gdpr-daemon migrate` and again after every upgrade:
--
--     psql -v ON_ERROR_STOP=1 -d gdpr -f config/sql/roles.sql
--
-- It is idempotent: roles are created when missing (they are cluster-wide, so another
-- database may have created them already), then this database's grants are reset and
-- given again.  The three roles are NOLOGIN groups; give people and processes login
-- roles that are members, for example:
--
--     CREATE ROLE gdpr_daemon_app LOGIN PASSWORD '...' IN ROLE gdpr_daemon;
--     CREATE ROLE alice LOGIN IN ROLE gdpr_intake;          -- a DPO entering requests
--     CREATE ROLE audit_firm LOGIN IN ROLE gdpr_auditor;
--
-- gdpr_intake   enters requests (plain INSERT or `gdpr-daemon submit|import`), reads
--               them and their history, and approves, extends, retries and cancels
--               through the database functions made for it (gdpr_approve_requests,
--               gdpr_extend_deadline, gdpr_retry_request, gdpr_cancel_request); it cannot
--               set a status, an approval or a deadline directly, nor write any history.
--               Who entered and who approved a request is the login (session_user), and
--               four eyes refuse a login approving what it entered: give each person
--               their own login.
-- gdpr_daemon   what `gdpr-daemon run` needs: the queue's status columns, history and
--               event inserts, its processes' started calls (gdpr_dispatch), the
--               event cursor, its settings and holidays, the
--               retention purge (through gdpr_purge_personal_fields, gdpr_scrub_events
--               and gdpr_purge_chain only, which keep at least the retention floors in
--               gdpr_daemon_settings; it may raise a floor, never shorten one).  No DDL,
--               no DELETE or UPDATE of history, no change of what a DPO entered: of a
--               request's own fields it may only erase the rectify value, keeping its
--               SHA-256 (a trigger checks).  History times are the database's clock.
-- gdpr_auditor  reads the history, the chains, the requests' non-personal columns (no
--               record_id, value or comment) and the account events through the view
--               audit_events_masked, where record ids, values and comments in the
--               parameters are SHA-256 digests (not the table's parameters or raw): what
--               `gdpr-daemon report` and `gdpr-daemon audit verify` need.
--
-- Nobody but gdpr_intake (whose `import` needs one) may create temporary tables; the
-- database functions never read one anyway (search_path pinned, tables qualified).

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['gdpr_intake', 'gdpr_daemon', 'gdpr_auditor'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- exists already (or another session created it just now)
        END;
    END LOOP;
END $$;

-- Start from nothing in this database, so a re-run after an upgrade drops stale grants.
REVOKE ALL ON gdpr_requests, gdpr_request_log, gdpr_holidays, gdpr_daemon_settings, audit_events,
    audit_events_masked, event_cursors, audit_quarantine, integrity_chains, integrity_checkpoints, alembic_version,
    gdpr_dispatch
    FROM gdpr_intake, gdpr_daemon, gdpr_auditor;
REVOKE ALL ON FUNCTION gdpr_cancel_request(bigint, text, text), gdpr_approve_requests(bigint[], text),
    gdpr_extend_deadline(bigint, integer, text, text), gdpr_retry_request(bigint, text),
    gdpr_purge_chain(text, timestamptz, integer), gdpr_purge_personal_fields(integer, integer, text),
    gdpr_scrub_events(integer, integer)
    FROM PUBLIC, gdpr_intake, gdpr_daemon, gdpr_auditor;

-- Only the owner creates objects: no DDL for anyone else at run time, and no temporary
-- tables but for gdpr_intake's `gdpr-daemon import` (its COPY goes through one).
DO $$
BEGIN
    EXECUTE format('REVOKE CREATE ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM gdpr_daemon, gdpr_auditor', current_database());
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO gdpr_intake', current_database());
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO gdpr_intake, gdpr_daemon, gdpr_auditor', current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO gdpr_intake, gdpr_daemon, gdpr_auditor', current_schema());
END $$;

GRANT SELECT ON alembic_version TO gdpr_intake, gdpr_daemon, gdpr_auditor;

-- ---- gdpr_intake -------------------------------------------------------------------
GRANT SELECT ON gdpr_requests, gdpr_request_log TO gdpr_intake;
-- The insert triggers read these (deadline, four eyes); `status` reads the event cursor.
GRANT SELECT ON gdpr_holidays, gdpr_daemon_settings, event_cursors TO gdpr_intake;
-- Not status, approved_by, due_at nor any column the daemon owns (requested_by becomes
-- the login whatever is given: see gdpr_requests_before_insert).
GRANT INSERT (request_type, service_id, table_name, record_id, field, value, comment, external_ref,
              received_at, requested_by)
    ON gdpr_requests TO gdpr_intake;
-- The DPO's actions, each checking the request's state and writing its history row.
GRANT EXECUTE ON FUNCTION gdpr_cancel_request(bigint, text, text), gdpr_approve_requests(bigint[], text),
    gdpr_extend_deadline(bigint, integer, text, text), gdpr_retry_request(bigint, text)
    TO gdpr_intake;

-- ---- gdpr_daemon -------------------------------------------------------------------
GRANT SELECT ON gdpr_requests, gdpr_request_log, gdpr_holidays, gdpr_daemon_settings, audit_events,
    audit_events_masked, event_cursors, audit_quarantine, integrity_chains, integrity_checkpoints
    TO gdpr_daemon;
-- The queue's columns and the event confirmation; of what the DPO entered only the value,
-- and only to erase it (a trigger refuses anything else).  The retention purge of
-- record_id and comment goes through gdpr_purge_personal_fields.
GRANT UPDATE (status, attempts, next_attempt_at, ownbackup_request_id, last_error, submitted_at,
              confirmed_at, value, value_sha256, lease_owner, lease_expires_at, updated_at)
    ON gdpr_requests TO gdpr_daemon;
GRANT INSERT ON gdpr_request_log, audit_events, audit_quarantine TO gdpr_daemon;
-- Its processes' started calls, written before each call goes out and read by the reaper.
GRANT SELECT, INSERT, UPDATE, DELETE ON gdpr_dispatch TO gdpr_daemon;
GRANT INSERT, UPDATE ON event_cursors TO gdpr_daemon;
-- Written from its configuration at start-up (require_approval, holidays, daily marks).
GRANT INSERT, UPDATE ON gdpr_daemon_settings TO gdpr_daemon;
GRANT INSERT, DELETE ON gdpr_holidays TO gdpr_daemon;
-- History and events leave only through the retention purge, which records a checkpoint;
-- personal fields and event keys go through their functions, all within the floors.
GRANT EXECUTE ON FUNCTION gdpr_purge_chain(text, timestamptz, integer),
    gdpr_purge_personal_fields(integer, integer, text), gdpr_scrub_events(integer, integer)
    TO gdpr_daemon;

-- ---- gdpr_auditor ------------------------------------------------------------------
GRANT SELECT ON gdpr_request_log, audit_events_masked, event_cursors, integrity_chains,
    integrity_checkpoints, gdpr_holidays
    TO gdpr_auditor;
-- The events' columns but parameters and raw (which hold record ids): those through the view.
GRANT SELECT (event_id, created_at, key, source, user_email, user_id, ip_address, service_id, ingested_at,
              chain_seq, row_hash)
    ON audit_events TO gdpr_auditor;
-- What the quarantine holds but the items themselves (raw, as received, may hold record ids).
GRANT SELECT (id, account, event_id, after_event_id, occurrence, reason, raw_sha256, received_at)
    ON audit_quarantine TO gdpr_auditor;
GRANT SELECT (id, request_type, service_id, table_name, field, external_ref, received_at, due_at,
              original_due_at, status, attempts, next_attempt_at, ownbackup_request_id, last_error,
              created_at, updated_at, submitted_at, confirmed_at, value_sha256, record_id_sha256,
              requested_by, approved_by, entered_login, approved_login, purged_at, lease_owner, lease_expires_at)
    ON gdpr_requests TO gdpr_auditor;
