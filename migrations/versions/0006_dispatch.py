"""Dispatch: which claims each daemon process has started, so a crash leaves an exact history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

A claim moves a request to ``in_flight`` and counts an attempt, as before; but a process
holds claims that wait for a call slot, and when it stopped, the reaper of another one
could only call every expired claim "outcome unknown", though most had never been sent.
Now a process adds a claim's id to its row of ``gdpr_dispatch`` in a statement committed
before the call goes out (one statement for every start that comes together, no history
row: nothing changes for the request), and the reaper reads that row: an expired claim
that was started may have been sent ("outcome unknown", as before); one that was not was
never sent, and goes back to pending without counting the attempt, its history saying so.

Why a table of its own rather than a column of ``gdpr_requests``: a start is then one
small row written per batch of starts, not an update of every request row (a new row
version and an entry in each of the table's indexes), which bench/drain.py measured as
the difference between keeping the drain rate and losing a fifth of it.  The row of a
process holds only its calls under way (at most ``queue_concurrency`` ids): the worker
drops those whose outcome is written, a claim drops an earlier attempt's, and the reaper
drops what it reaps and deletes the rows of processes that stopped.

The daemon's role writes it (``config/sql/roles.sql`` grants it; so does this migration
when that role exists already, so that an upgrade works before roles.sql runs again).
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

from gdpr_daemon.db.sqlscript import run_script

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE {S}.gdpr_dispatch (
    owner       text PRIMARY KEY,
    started     bigint[] NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT dispatch_owner_at_most_64_characters CHECK (length(owner) <= 64)
);
COMMENT ON TABLE {S}.gdpr_dispatch IS
    'One row per daemon process (its lease token): the requests whose calls it has started, each added in a '
    'statement committed before the call goes out. The reaper calls an expired claim listed here "outcome '
    'unknown" and one not listed "never sent".';
COMMENT ON COLUMN {S}.gdpr_dispatch.started IS
    'Ids of requests this process has claimed (in_flight, lease_owner = owner) and started: a call may be under way.';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'gdpr_daemon') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON {S}.gdpr_dispatch TO gdpr_daemon;
    END IF;
END $$;
"""

DOWNGRADE = r"""
DROP TABLE {S}.gdpr_dispatch;
"""


def _schema() -> str:
    return str(op.get_bind().execute(text("SELECT quote_ident(current_schema())")).scalar_one())


def upgrade() -> None:
    run_script(op.get_bind(), UPGRADE.replace("{S}", _schema()))


def downgrade() -> None:
    run_script(op.get_bind(), DOWNGRADE.replace("{S}", _schema()))
