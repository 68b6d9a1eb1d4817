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

-- Deployment-wide switches the database itself must know, because intake tools insert
-- rows without going through the daemon.  Written by the daemon at start-up from its
-- configuration (require_approval).
CREATE TABLE gdpr_daemon_settings (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Four eyes: when approval is required, a new request waits for a second person.
CREATE OR REPLACE FUNCTION gdpr_requests_before_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.due_at := coalesce(NEW.due_at, gdpr_due_at(NEW.received_at));
    IF NEW.status = 'pending' AND NEW.approved_by IS NULL AND coalesce(
        (SELECT value = 'true'::jsonb FROM gdpr_daemon_settings WHERE key = 'require_approval'), false)
    THEN
        NEW.status := 'awaiting_approval';
    END IF;
    RETURN NEW;
END $$;
"""

DOWNGRADE = r"""
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
