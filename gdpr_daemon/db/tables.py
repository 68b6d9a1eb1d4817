"""Table definitions (SQLAlchemy Core), mirroring the Alembic migrations.

The migrations in ``migrations/`` are the source of truth for the schema; these
objects let the rest of ``db/`` build statements.  A test checks both agree.
"""

from __future__ import annotations

from sqlalchemy import (
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

metadata = MetaData()
TZ = TIMESTAMP(timezone=True)

# Request states (contract: DESIGN.md, "Request state machine").
PENDING = "pending"
IN_FLIGHT = "in_flight"
SUBMITTED = "submitted"
FAILED = "failed"
REJECTED = "rejected"
CANCELLED = "cancelled"
AWAITING_APPROVAL = "awaiting_approval"
STATUSES = (AWAITING_APPROVAL, PENDING, IN_FLIGHT, SUBMITTED, FAILED, REJECTED, CANCELLED)
FINISHED = (SUBMITTED, FAILED, REJECTED, CANCELLED)

FORGET = "forget"
RECTIFY = "rectify"
REQUEST_TYPES = (FORGET, RECTIFY)

# Documented input limits, enforced by CHECK constraints (see the migration).
MAX_ID_LENGTH = 255
MAX_VALUE_LENGTH = 131072
MAX_COMMENT_LENGTH = 4000

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
)

gdpr_holidays = Table(
    "gdpr_holidays",
    metadata,
    Column("day", Date, primary_key=True),
    Column("name", Text),
)
