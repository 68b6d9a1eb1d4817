"""The audit trail: audit_events, event_cursors, audit_quarantine.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from alembic import op

from gdpr_daemon.db.sqlscript import run_script

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE audit_events (
    event_id     bigint PRIMARY KEY,
    created_at   timestamptz NOT NULL,
    key          text,
    source       text,
    user_email   text,
    user_id      text,
    ip_address   text,
    service_id   integer,
    parameters   jsonb,
    raw          jsonb NOT NULL,
    ingested_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE audit_events IS
    'The OwnBackup account event history, pulled with the from cursor; raw is the event as received.';

-- The report filters: a time range, optionally narrowed by key, user or service.  Each
-- index ends with created_at so a narrowed report still reads its range in order.
CREATE INDEX audit_events_created_idx ON audit_events (created_at, event_id);
CREATE INDEX audit_events_key_idx ON audit_events (key, created_at);
CREATE INDEX audit_events_user_idx ON audit_events (lower(user_email), created_at);
CREATE INDEX audit_events_service_idx ON audit_events (service_id, created_at)
    WHERE service_id IS NOT NULL;
-- Correlation of GDPR events with the requests the daemon submitted (a few rows only).
CREATE INDEX audit_events_gdpr_request_idx ON audit_events
    ((coalesce(parameters->>'request_id', parameters->>'job_id', parameters->>'id')))
    WHERE key LIKE 'gdpr.%';

CREATE TABLE event_cursors (
    account        text PRIMARY KEY,
    last_event_id  bigint NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE event_cursors IS
    'Where the event pull resumes: one row per OwnBackup account (its base URL). One database serves one account.';

CREATE TABLE audit_quarantine (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account         text NOT NULL,
    event_id        bigint,
    after_event_id  bigint NOT NULL,
    occurrence      integer NOT NULL DEFAULT 0,
    reason          text NOT NULL,
    raw             jsonb NOT NULL,
    raw_sha256      text NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE audit_quarantine IS
    'Malformed account events, kept as received with the reason; the pull went on past them.';
COMMENT ON COLUMN audit_quarantine.after_event_id IS
    'The last well-formed event_id before this item (0: the start of the history).';
COMMENT ON COLUMN audit_quarantine.occurrence IS
    'Counts identical items after the same event, so a page served again is not quarantined twice.';
-- An item without an event_id at the end of a page is served again by the next pull.
CREATE UNIQUE INDEX audit_quarantine_item_key
    ON audit_quarantine (account, after_event_id, raw_sha256, occurrence);
"""

DOWNGRADE = """
DROP TABLE audit_quarantine;
DROP TABLE event_cursors;
DROP TABLE audit_events;
"""


def upgrade() -> None:
    run_script(op.get_bind(), UPGRADE)


def downgrade() -> None:
    run_script(op.get_bind(), DOWNGRADE)
