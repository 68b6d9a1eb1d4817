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
-- configuration (require_approval).
CREATE TABLE gdpr_daemon_settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE gdpr_daemon_settings IS
    'Switches written by gdpr-daemon from its configuration (require_approval), read by triggers.';

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
"""

DOWNGRADE = r"""
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
