"""Dispatch: a claim is a lease on a pending row; in_flight means a call may have gone out.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Until 0005 a claim moved a row to ``in_flight`` (attempt counted, history written) and a
process held up to four times its concurrency in claims, so a crash left hundreds of
rows in flight that had never been sent, and the reaper could only call each "outcome
unknown".  From this revision on (``gdpr_daemon/db/queue.py``):

* a claim only sets ``lease_owner`` and ``lease_expires_at`` on a ``pending`` row (no
  state change, no history row); a claim whose lease expired is taken over by the next
  claim of any process, with a history row saying it was never sent;
* a row moves to ``in_flight`` (attempt counted, history row) in a transaction committed
  before its call goes out, so ``in_flight`` means "a call may have been made", and only
  such rows are reaped as "outcome unknown".

No column changes, so nothing new to grant (``gdpr_daemon`` may update the lease columns
already).  What changes is which rows hold leases: pending ones too.  The partial index on
leases of in-flight rows becomes one on every lease, which both the reaper (in-flight rows
whose lease expired) and the look-out for a stopped process's claims (when does the
earliest lease of another process expire) read.
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
CREATE INDEX gdpr_requests_leases_idx ON {S}.gdpr_requests (lease_expires_at) WHERE lease_owner IS NOT NULL;
DROP INDEX {S}.gdpr_requests_lease_idx;
COMMENT ON COLUMN {S}.gdpr_requests.lease_owner IS
    'Random token of the daemon process holding the claim (never a host or pod name). On a pending row: claimed, '
    'no call made yet; on an in_flight row: the call may have gone out.';
COMMENT ON COLUMN {S}.gdpr_requests.lease_expires_at IS
    'When the claim lapses unless renewed: a pending claim is then taken over by any process, an in_flight one '
    'reaped as outcome unknown.';
"""

DOWNGRADE = r"""
CREATE INDEX gdpr_requests_lease_idx ON {S}.gdpr_requests (lease_expires_at) WHERE status = 'in_flight';
DROP INDEX {S}.gdpr_requests_leases_idx;
-- Claims of the new kind (pending rows with a lease) mean nothing to the old code: drop them.
UPDATE {S}.gdpr_requests SET lease_owner = NULL, lease_expires_at = NULL
WHERE status = 'pending' AND lease_owner IS NOT NULL;
COMMENT ON COLUMN {S}.gdpr_requests.lease_owner IS
    'Random token of the daemon process holding the claim (never a host or pod name).';
COMMENT ON COLUMN {S}.gdpr_requests.lease_expires_at IS NULL;
"""


def _schema() -> str:
    return str(op.get_bind().execute(text("SELECT quote_ident(current_schema())")).scalar_one())


def upgrade() -> None:
    run_script(op.get_bind(), UPGRADE.replace("{S}", _schema()))


def downgrade() -> None:
    run_script(op.get_bind(), DOWNGRADE.replace("{S}", _schema()))
