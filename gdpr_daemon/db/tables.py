"""The schema at a glance: every table the migrations create, as SQLAlchemy Core tables.

The migrations in ``migrations/`` are the source of truth (hand-written SQL: triggers,
CHECKs and grants do not fit here); the statements in ``db/`` are SQL text too.  This
file is what a reader (and Alembic's ``target_metadata``) sees of the tables: every
table, column, type and nullability.  ``tests/test_schema_mirror.py`` checks it against a
migrated database, table by table and column by column, so it cannot drift.
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP
from sqlalchemy.types import UserDefinedType


class XID8(UserDefinedType[int]):
    """Postgres's 64-bit transaction id."""

    cache_ok = True

    def get_col_spec(self, **_kw: object) -> str:
        return "xid8"

metadata = MetaData()
TZ = TIMESTAMP(timezone=True)

gdpr_requests = Table(
    "gdpr_requests",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("request_type", Text, nullable=False),
    Column("service_id", Integer, nullable=False),
    Column("table_name", Text, nullable=False),
    Column("record_id", Text, nullable=False),
    Column("field", Text),
    Column("value", Text),
    Column("comment", Text),
    Column("external_ref", Text, unique=True),
    Column("received_at", TZ, nullable=False),
    Column("due_at", TZ, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", TZ, nullable=False),
    Column("ownbackup_request_id", BigInteger),
    Column("last_error", Text),
    Column("created_at", TZ, nullable=False),
    Column("updated_at", TZ, nullable=False),
    Column("submitted_at", TZ),
    Column("confirmed_at", TZ),
    Column("value_sha256", Text),
    Column("requested_by", Text),
    Column("approved_by", Text),
    # Extensions beyond the contract: the claim lease.
    Column("lease_owner", Text),
    Column("lease_expires_at", TZ),
    Column("original_due_at", TZ),
    # Retention (migration 0004): when personal fields were purged, and the record_id digest.
    Column("purged_at", TZ),
    Column("record_id_sha256", Text),
    # Four eyes by login (migration 0005): who entered and who approved, as Postgres saw them.
    Column("entered_login", Text),
    Column("approved_login", Text),
)

gdpr_request_log = Table(
    "gdpr_request_log",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("request_id", BigInteger, ForeignKey("gdpr_requests.id"), nullable=False),
    Column("at", TZ, nullable=False),
    Column("from_status", Text),
    Column("to_status", Text, nullable=False),
    Column("detail", Text),
    Column("actor", Text, nullable=False),
    # Hash chain (migration 0004), filled by the insert trigger.
    Column("chain_seq", BigInteger, nullable=False, unique=True),
    Column("row_hash", LargeBinary, nullable=False),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("event_id", BigInteger, primary_key=True),
    Column("created_at", TZ, nullable=False),
    Column("key", Text),
    Column("source", Text),
    Column("user_email", Text),
    Column("user_id", Text),
    Column("ip_address", Text),
    Column("service_id", Integer),
    Column("parameters", JSONB),
    Column("raw", JSONB, nullable=False),
    Column("ingested_at", TZ, nullable=False),
    # Hash chain (migration 0004), filled by the insert trigger.
    Column("chain_seq", BigInteger, nullable=False, unique=True),
    Column("row_hash", LargeBinary, nullable=False),
)

event_cursors = Table(
    "event_cursors",
    metadata,
    Column("account", Text, primary_key=True),
    Column("last_event_id", BigInteger, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

audit_quarantine = Table(
    "audit_quarantine",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("account", Text, nullable=False),
    Column("event_id", BigInteger),
    Column("after_event_id", BigInteger, nullable=False),
    Column("occurrence", Integer, nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", JSONB, nullable=False),
    Column("raw_sha256", Text, nullable=False),
    Column("received_at", TZ, nullable=False),
)

integrity_chains = Table(
    "integrity_chains",
    metadata,
    Column("chain", Text, primary_key=True),
    Column("base_seq", BigInteger, nullable=False),
    Column("base_hash", LargeBinary, nullable=False),
    Column("updated_at", TZ, nullable=False),
    # The chain lock (migration 0005): the transaction writing it, and how far the purge scrubbed events.
    Column("writer_xact", XID8),
    Column("scrubbed_seq", BigInteger, nullable=False),
)

integrity_checkpoints = Table(
    "integrity_checkpoints",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("chain", Text, ForeignKey("integrity_chains.chain"), nullable=False),
    Column("from_seq", BigInteger, nullable=False),
    Column("to_seq", BigInteger, nullable=False),
    Column("base_hash", LargeBinary, nullable=False),
    Column("at", TZ, nullable=False),
    Column("by_role", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("newest_at", TZ),
)

gdpr_holidays = Table(
    "gdpr_holidays",
    metadata,
    Column("day", Date, primary_key=True),
    Column("name", Text),
)

# Settings the daemon writes for intake tools and the retention floors (migrations 0003, 0005).
gdpr_daemon_settings = Table(
    "gdpr_daemon_settings",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", JSONB, nullable=False),
    Column("updated_at", TZ, nullable=False),
)

# The requests whose call each process has started (migration 0006).
gdpr_dispatch = Table(
    "gdpr_dispatch",
    metadata,
    Column("owner", Text, primary_key=True),
    Column("started", ARRAY(BigInteger), nullable=False),
    Column("updated_at", TZ, nullable=False),
)
