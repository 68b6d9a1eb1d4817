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
--               them and their history, cancels through gdpr_cancel_request(); it
--               cannot set a status, an approval or a deadline, nor write any history.
-- gdpr_daemon   what `gdpr-daemon run` needs: the queue's status columns, history and
--               event inserts, the event cursor, its settings and holidays, the
--               retention purge (through gdpr_purge_chain only).  No DDL, no DELETE or
--               UPDATE of history, no change of what a DPO entered.
-- gdpr_auditor  reads the history, the account events, the chains and the requests'
--               non-personal columns (no record_id, value or comment): what
--               `gdpr-daemon report` and `gdpr-daemon audit verify` need.
--
-- Approving, retrying and extending deadlines (`gdpr-daemon requests approve|retry|
-- extend`) stay with the table owner or a role you grant UPDATE to yourself.

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
    event_cursors, audit_quarantine, integrity_chains, integrity_checkpoints, alembic_version
    FROM gdpr_intake, gdpr_daemon, gdpr_auditor;
REVOKE ALL ON FUNCTION gdpr_cancel_request(bigint, text, text) FROM PUBLIC, gdpr_intake, gdpr_daemon, gdpr_auditor;
REVOKE ALL ON FUNCTION gdpr_purge_chain(text, timestamptz, integer) FROM PUBLIC, gdpr_intake, gdpr_daemon, gdpr_auditor;

-- Only the owner creates objects: no DDL for anyone else at run time (PUBLIC keeps
-- TEMPORARY, which `gdpr-daemon import` uses for its COPY).
DO $$
BEGIN
    EXECUTE format('REVOKE CREATE ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('REVOKE CREATE ON SCHEMA %I FROM PUBLIC', current_schema());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO gdpr_intake, gdpr_daemon, gdpr_auditor', current_database());
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO gdpr_intake, gdpr_daemon, gdpr_auditor', current_schema());
END $$;

GRANT SELECT ON alembic_version TO gdpr_intake, gdpr_daemon, gdpr_auditor;

-- ---- gdpr_intake -------------------------------------------------------------------
GRANT SELECT ON gdpr_requests, gdpr_request_log TO gdpr_intake;
-- The insert triggers read these (deadline, four eyes).
GRANT SELECT ON gdpr_holidays, gdpr_daemon_settings TO gdpr_intake;
-- Not status, approved_by, due_at nor any column the daemon owns.
GRANT INSERT (request_type, service_id, table_name, record_id, field, value, comment, external_ref,
              received_at, requested_by)
    ON gdpr_requests TO gdpr_intake;
GRANT EXECUTE ON FUNCTION gdpr_cancel_request(bigint, text, text) TO gdpr_intake;

-- ---- gdpr_daemon -------------------------------------------------------------------
GRANT SELECT ON gdpr_requests, gdpr_request_log, gdpr_holidays, gdpr_daemon_settings, audit_events,
    event_cursors, audit_quarantine, integrity_chains, integrity_checkpoints
    TO gdpr_daemon;
-- The queue's columns, the event confirmation, and the retention purge's personal fields.
GRANT UPDATE (status, attempts, next_attempt_at, ownbackup_request_id, last_error, submitted_at,
              confirmed_at, value, value_sha256, lease_owner, lease_expires_at, updated_at,
              record_id, record_id_sha256, comment, purged_at)
    ON gdpr_requests TO gdpr_daemon;
GRANT INSERT ON gdpr_request_log, audit_events, audit_quarantine TO gdpr_daemon;
GRANT INSERT, UPDATE ON event_cursors TO gdpr_daemon;
-- Written from its configuration at start-up (require_approval, holidays, daily marks).
GRANT INSERT, UPDATE ON gdpr_daemon_settings TO gdpr_daemon;
GRANT INSERT, DELETE ON gdpr_holidays TO gdpr_daemon;
-- History and events leave only through the retention purge, which records a checkpoint.
GRANT EXECUTE ON FUNCTION gdpr_purge_chain(text, timestamptz, integer) TO gdpr_daemon;

-- ---- gdpr_auditor ------------------------------------------------------------------
GRANT SELECT ON gdpr_request_log, audit_events, event_cursors, audit_quarantine, integrity_chains,
    integrity_checkpoints, gdpr_holidays
    TO gdpr_auditor;
GRANT SELECT (id, request_type, service_id, table_name, field, external_ref, received_at, due_at,
              original_due_at, status, attempts, next_attempt_at, ownbackup_request_id, last_error,
              created_at, updated_at, submitted_at, confirmed_at, value_sha256, record_id_sha256,
              requested_by, approved_by, purged_at)
    ON gdpr_requests TO gdpr_auditor;
