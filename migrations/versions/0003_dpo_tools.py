"""The DPO's everyday tools: deadline extension, four eyes.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from alembic import op

from gdpr_daemon.db.sqlscript import run_script

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

UPGRADE = r"""
-- Art. 12(3): the deadline may be extended once, by up to two further months; the
-- original stays here and the reason in the history.
ALTER TABLE gdpr_requests ADD COLUMN original_due_at timestamptz;
COMMENT ON COLUMN gdpr_requests.original_due_at IS
    'The deadline before its one extension (GDPR Art. 12(3)); NULL while never extended.';

-- Deployment-wide switches the database itself must know, because intake tools insert
-- rows without going through the daemon.  Written by the daemon at start-up from its
-- configuration (require_approval; see db/intake_settings.py), and the day of the last
-- overdue report (overdue_logged_on), so that replicas log it once a day between them.
CREATE TABLE gdpr_daemon_settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE gdpr_daemon_settings IS
    'Switches gdpr-daemon writes from its configuration (require_approval, read by the insert trigger), '
    'and its daily markers.';

-- Four eyes: when approval is required, a new request waits for a second person.  An
-- approval is a separate act (`gdpr-daemon requests approve`), so whatever approved_by
-- the inserting statement carries is dropped.
CREATE OR REPLACE FUNCTION gdpr_requests_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.due_at := coalesce(NEW.due_at, gdpr_due_at(NEW.received_at));
    IF NEW.status = 'pending' AND coalesce(
        (SELECT value = 'true'::jsonb FROM gdpr_daemon_settings WHERE key = 'require_approval'), false)
    THEN
        NEW.status := 'awaiting_approval';
        NEW.approved_by := NULL;
    END IF;
    RETURN NEW;
END $$;

ALTER TABLE gdpr_requests ADD CONSTRAINT approver_differs_from_requester CHECK (
    approved_by IS NULL OR requested_by IS NULL
    OR lower(btrim(approved_by)) <> lower(btrim(requested_by)));

-- Leaving awaiting_approval for anything but cancelled needs an approver.
CREATE FUNCTION gdpr_requests_guard_approval() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.approved_by IS NULL OR NEW.approved_by !~ '[^[:space:]]' THEN
        RAISE EXCEPTION 'request % awaits approval by a second person', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_needs_approver';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER gdpr_requests_guard_approval BEFORE UPDATE OF status ON gdpr_requests
    FOR EACH ROW WHEN (OLD.status = 'awaiting_approval' AND NEW.status NOT IN ('awaiting_approval', 'cancelled'))
    EXECUTE FUNCTION gdpr_requests_guard_approval();

-- Any change of due_at after the insert is the one extension Art. 12(3) allows: at most
-- to two further months after the first deadline, never earlier, and only once.  The
-- database keeps the first deadline in original_due_at itself, so SQL users cannot
-- extend twice either.  The WHEN clause keeps the queue's own updates free of it.
CREATE FUNCTION gdpr_requests_guard_due_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.original_due_at IS NOT NULL THEN
        RAISE EXCEPTION 'the deadline of request % was extended once already', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'deadline_extended_only_once';
    END IF;
    IF NEW.due_at IS NOT DISTINCT FROM OLD.due_at THEN
        RAISE EXCEPTION 'original_due_at of request % is set only by extending its deadline', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'original_due_at_set_by_extension';
    END IF;
    IF NEW.due_at < OLD.due_at THEN
        RAISE EXCEPTION 'the deadline of request % cannot move earlier', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'deadline_not_earlier';
    END IF;
    IF NEW.due_at > gdpr_due_at(OLD.received_at, 3) THEN
        RAISE EXCEPTION 'the deadline of request % can be extended by at most two further months', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'deadline_extension_at_most_two_months';
    END IF;
    NEW.original_due_at := OLD.due_at;
    RETURN NEW;
END $$;
CREATE TRIGGER gdpr_requests_guard_due_at BEFORE UPDATE OF due_at, original_due_at ON gdpr_requests
    FOR EACH ROW WHEN (OLD.due_at IS DISTINCT FROM NEW.due_at
                       OR OLD.original_due_at IS DISTINCT FROM NEW.original_due_at)
    EXECUTE FUNCTION gdpr_requests_guard_due_at();

-- The DPO's actions as functions, so that an intake role that may only INSERT requests
-- (config/sql/roles.sql) can approve, extend and retry without any UPDATE right: each
-- checks the request's state under a row lock, changes it and writes its history row,
-- in one call.  A refusal is one sentence per request (SQLSTATE 55000, P0002 or 22023),
-- which the commands show as it is.  EXECUTE is granted per role, never to PUBLIC.

-- Four eyes: approve requests, all or none; the approver must differ from who entered each.
CREATE FUNCTION gdpr_approve_requests(p_ids bigint[], p_actor text DEFAULT NULL)
RETURNS bigint[] LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    who text := coalesce(nullif(btrim(p_actor), ''), session_user);
    wanted bigint[] := ARRAY(SELECT DISTINCT i FROM unnest(p_ids) AS i WHERE i IS NOT NULL ORDER BY i);
    r record;
    problems text[] := '{}';
BEGIN
    PERFORM 1 FROM gdpr_requests WHERE id = ANY(wanted) ORDER BY id FOR UPDATE;
    FOR r IN SELECT w.i AS id, g.id IS NOT NULL AS found, g.status, g.requested_by, g.approved_by
             FROM unnest(wanted) AS w(i) LEFT JOIN gdpr_requests g ON g.id = w.i ORDER BY w.i LOOP
        IF NOT r.found THEN
            problems := problems || format('there is no request %s.', r.id);
        ELSIF r.status <> 'awaiting_approval' AND r.approved_by IS NOT NULL THEN
            problems := problems || format('request %s was approved already, by %s.', r.id, r.approved_by);
        ELSIF r.status <> 'awaiting_approval' THEN
            problems := problems || format('request %s is %s, not awaiting approval.', r.id, r.status);
        ELSIF lower(btrim(r.requested_by)) = lower(btrim(who)) THEN
            problems := problems || format(
                'request %s was entered by %s; four eyes need a different person to approve it.', r.id, r.requested_by);
        END IF;
    END LOOP;
    IF cardinality(wanted) = 0 THEN
        problems := problems || 'give the ids of the requests to approve.'::text;
    END IF;
    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state', MESSAGE =
            array_to_string(problems[1:20], E'
') || CASE WHEN cardinality(problems) > 20
                THEN format(E'
... and %s more; nothing was approved.', cardinality(problems) - 20)
                ELSE E'
Nothing was approved.' END;
    END IF;
    UPDATE gdpr_requests SET status = 'pending', approved_by = who, next_attempt_at = now(), updated_at = now()
    WHERE id = ANY(wanted);
    -- Both names in the history: the approver as actor, who entered it in the sentence,
    -- and the database login when it is not the name given.
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, 'awaiting_approval', 'pending',
           'approved by ' || who || ' (four eyes); entered by ' || coalesce(requested_by, 'unknown')
           || CASE WHEN session_user <> who THEN '; database login ' || session_user ELSE '' END,
           who
    FROM gdpr_requests WHERE id = ANY(wanted) ORDER BY id;
    PERFORM pg_notify('gdpr_requests', '');
    RETURN wanted;
END $$;
REVOKE ALL ON FUNCTION gdpr_approve_requests(bigint[], text) FROM PUBLIC;

-- Art. 12(3): extend a deadline once, within the first month, by 1 or 2 further months
-- counted from receipt; the reason goes into the history.  The due_at guard above
-- enforces "once" and "at most two" for plain SQL as well.
CREATE FUNCTION gdpr_extend_deadline(p_id bigint, p_months integer, p_reason text, p_actor text DEFAULT NULL,
                                     OUT first_due_at timestamptz, OUT new_due_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    who text := coalesce(nullif(btrim(p_actor), ''), session_user);
    why text := btrim(coalesce(p_reason, ''));
    r record;
BEGIN
    IF p_months IS NULL OR p_months NOT IN (1, 2) THEN
        RAISE EXCEPTION 'a deadline can be extended by 1 or 2 further months (GDPR Art. 12(3))'
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF why = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE =
            'give the reason for the extension with --reason; '
            || 'GDPR Art. 12(3) requires telling the data subject why';
    ELSIF why ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'the reason contains a control character; write it on one line'
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(why) > 1000 THEN
        RAISE EXCEPTION 'the reason is longer than 1000 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT g.status, g.due_at, g.original_due_at, g.received_at INTO r
    FROM gdpr_requests g WHERE g.id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no request %', p_id USING ERRCODE = 'no_data_found';
    ELSIF r.original_due_at IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state', MESSAGE = format(
            'the deadline of request %s was extended once already (from %s to %s); '
            || 'GDPR Art. 12(3) allows one extension', p_id,
            to_char(r.original_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
            to_char(r.due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
    ELSIF r.status IN ('submitted', 'cancelled') THEN
        RAISE EXCEPTION 'request % is %; it has no deadline left to extend', p_id, r.status
            USING ERRCODE = 'object_not_in_prerequisite_state';
    ELSIF r.due_at < now() THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state', MESSAGE = format(
            'the deadline of request %s passed on %s; GDPR Art. 12(3) allows an extension only within the '
            || 'first month, when the data subject is told of it',
            p_id, to_char(r.due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'));
    END IF;
    UPDATE gdpr_requests g SET due_at = gdpr_due_at(r.received_at, 1 + p_months), updated_at = now()
    WHERE g.id = p_id RETURNING g.original_due_at, g.due_at INTO first_due_at, new_due_at;
    IF first_due_at IS NULL THEN  -- the deadline was as late as this already (set by hand)
        RAISE EXCEPTION 'the deadline of request % is % already; nothing to extend',
            p_id, to_char(new_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    VALUES (p_id, r.status, r.status,
            format('deadline extended by %s further %s (GDPR Art. 12(3)) from %s to %s: %s',
                   p_months, CASE p_months WHEN 1 THEN 'month' ELSE 'months' END,
                   to_char(first_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                   to_char(new_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), why),
            who);
END $$;
REVOKE ALL ON FUNCTION gdpr_extend_deadline(bigint, integer, text, text) FROM PUBLIC;

-- Send a failed or rejected request again: attempts start from zero.
CREATE FUNCTION gdpr_retry_request(p_id bigint, p_actor text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    st text;
BEGIN
    SELECT status INTO st FROM gdpr_requests WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'there is no request %', p_id USING ERRCODE = 'no_data_found';
    END IF;
    IF st NOT IN ('failed', 'rejected') THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state', MESSAGE = CASE st
            WHEN 'submitted' THEN format('request %s was submitted already; nothing to retry', p_id)
            WHEN 'pending' THEN format('request %s is pending already; the daemon will submit it', p_id)
            WHEN 'in_flight' THEN format('request %s is being submitted right now', p_id)
            WHEN 'awaiting_approval' THEN format(
                'request %s awaits approval; approve it with `gdpr-daemon requests approve %s`', p_id, p_id)
            ELSE format('request %s is %s; only failed or rejected requests can be retried', p_id, st) END;
    END IF;
    UPDATE gdpr_requests SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL,
                             updated_at = now()
    WHERE id = p_id;
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    VALUES (p_id, st, 'pending', 'retried by the DPO: attempts start again',
            coalesce(nullif(btrim(p_actor), ''), session_user));
    PERFORM pg_notify('gdpr_requests', '');
END $$;
REVOKE ALL ON FUNCTION gdpr_retry_request(bigint, text) FROM PUBLIC;
"""

DOWNGRADE = r"""
DROP FUNCTION gdpr_retry_request(bigint, text);
DROP FUNCTION gdpr_extend_deadline(bigint, integer, text, text);
DROP FUNCTION gdpr_approve_requests(bigint[], text);
DROP TRIGGER gdpr_requests_guard_due_at ON gdpr_requests;
DROP FUNCTION gdpr_requests_guard_due_at();
DROP TRIGGER gdpr_requests_guard_approval ON gdpr_requests;
DROP FUNCTION gdpr_requests_guard_approval();
ALTER TABLE gdpr_requests DROP CONSTRAINT approver_differs_from_requester;
CREATE OR REPLACE FUNCTION gdpr_requests_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.due_at := coalesce(NEW.due_at, gdpr_due_at(NEW.received_at));
    RETURN NEW;
END $$;
DROP TABLE gdpr_daemon_settings;
ALTER TABLE gdpr_requests DROP COLUMN original_due_at;
"""


def upgrade() -> None:
    run_script(op.get_bind(), UPGRADE)


def downgrade() -> None:
    run_script(op.get_bind(), DOWNGRADE)
