"""Trust boundaries: pinned functions, an unsteerable hash chain, retention floors, roles' limits.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30

Why each part (the threat model is docs/security.md)
----------------------------------------------------
*Pinned functions.*  Every trigger function and every SECURITY DEFINER function is
redefined with schema-qualified table names and ``SET search_path = <schema>, pg_temp``:
the schema this migration runs in, resolved now and written into the DDL, and ``pg_temp``
last, so a temporary table a session creates (``gdpr_daemon_settings``,
``gdpr_requests`` ...) is never what a function reads.  ``tests/security`` proves it per
function and checks that no function of the schema is left unpinned.

*The hash chain's state* no longer lives in a transaction-local setting any role can
``set_config``, and its lock is no longer an advisory lock any login can take.  The
first row a transaction adds to a chain UPDATEs that chain's row of ``integrity_chains``
(``writer_xact`` := its transaction id), which only the table's owner may do (the
trigger is SECURITY DEFINER; nobody else holds UPDATE, and ``SELECT ... FOR UPDATE``
needs it too).  That row lock is the chain lock, held to commit: chain order is commit
order, and chain_seq has no gaps.  Every later row of the transaction sees its own
``writer_xact`` and reads the previous row through the unique chain_seq index (rows an
earlier row of the same statement inserted are visible to a BEFORE trigger).  The cost
per row is that index probe instead of a setting, and per transaction one UPDATE of a
two-row table; no round trip is added.  The wait for the lock is bounded
(``lock_timeout`` 5 s in ``integrity_chain_take``) and ends in SQLSTATE 40001 with a
sentence, which every client retries.  In REPEATABLE READ or SERIALIZABLE, a transaction
whose snapshot predates another writer's commit fails that UPDATE with 40001 (concurrent
update) instead of computing a stale chain_seq and hitting the unique index (23505).

*History time* (``gdpr_request_log.at``) is the database's clock, set by the chain
trigger whatever the inserter sent.

*Personal keys in account events* (``PERSONAL_KEYS``) enter the events chain's hash in
digest form (``sha256:<hex>`` of the value): the retention purge can then replace them by
that form in stored events (``gdpr_scrub_events``) and the chain still verifies, and the
auditors' view ``audit_events_masked`` shows exactly what the hash covers, so an auditor
verifies from the view without ever reading a record id.  Stored events that already
hold such keys are re-hashed once, from the first of them, and the re-hash is recorded
in ``integrity_checkpoints`` (kind ``rehash``).  For events without such keys the two
forms are the same text, so nothing changes.

*Retention floors* (``retention_days``, ``retention_history_days`` in
``gdpr_daemon_settings``) bind every login that is not the schema owner or a superuser:
the purge functions use the longer of the caller's period and the floor, and only the
owner may shorten a floor (``gdpr-daemon migrate`` writes the configured ones).

*Who* entered and who approved a request are database logins (``session_user``):
``entered_login`` and ``approved_login`` are set by the database; ``requested_by`` and
``approved_by`` are the login too, except for the schema owner and superusers (who can
change the table directly anyway), whose declared names are kept.  Four eyes refuses a
login approving what it entered, and any request whose enterer is unknown.

*Bounds*: dates entered by people (received_at, due_at) from 2000 to 2200, names and
free texts with length limits, all named CHECKs or named refusals (docs/bad-input.md).
Rows already present that break a new rule are repaired here with a history row saying
so (gdpr_requests), or the constraint is kept NOT VALID for old rows (the append-only
history, which cannot be repaired).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from alembic import op
from sqlalchemy import text

from gdpr_daemon.db.sqlscript import run_script, split_statements

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Keys of account-event parameters (at any depth) that name a data subject's record or
# carry what was written into it.
PERSONAL_KEYS = ("record_id", "record_ids", "value", "values", "old_value", "new_value", "comment")
# Matches the jsonb text of a document holding one of them as a key (jsonb writes `"key": `).
PERSONAL_KEY_RE = '"(' + "|".join(PERSONAL_KEYS) + ')": '

LOCK_TIMEOUT = "5s"
MIN_DATE, MAX_RECEIVED, MAX_DUE = "2000-01-01 00:00:00+00", "2200-01-01 00:00:00+00", "2201-01-01 00:00:00+00"


def _us(col: str) -> str:
    return f"(extract(epoch FROM {col}) * 1000000)::bigint"


def _q(col: str) -> str:
    return f"quote_nullable({col})"


# The hash contents: as 0004, but the events' parameters and raw enter as the texts
# p_text and r_text, which the trigger computes in digest form (db/integrity.py reads
# the same texts from the view audit_events_masked).
LOG_BODY = (
    f"concat_ws('|', NEW.chain_seq, NEW.id, NEW.request_id, {_us('NEW.at')}, {_q('NEW.from_status')}, "
    f"{_q('NEW.to_status')}, {_q('NEW.detail')}, {_q('NEW.actor')})"
)
EVENTS_BODY = (
    f"concat_ws('|', NEW.chain_seq, NEW.event_id, {_us('NEW.created_at')}, {_q('NEW.key')}, {_q('NEW.source')}, "
    f"{_q('NEW.user_email')}, {_q('NEW.user_id')}, {_q('NEW.ip_address')}, {_q('NEW.service_id')}, "
    f"{_q('p_text')}, {_q('r_text')}, {_us('NEW.ingested_at')})"
)
EVENTS_BODY_OF_ROW = EVENTS_BODY.replace("NEW.", "r.")


def _masked_text(col: str) -> str:
    return (f"CASE WHEN {col}::text ~ '{PERSONAL_KEY_RE}' THEN {{S}}.gdpr_mask_personal({col})::text "
            f"ELSE {col}::text END")


def _masked(col: str) -> str:
    return f"CASE WHEN {col}::text ~ '{PERSONAL_KEY_RE}' THEN {{S}}.gdpr_mask_personal({col}) ELSE {col} END"


PIN = "SET search_path = {S}, pg_temp"
KEYS_ARRAY = "ARRAY[" + ", ".join(f"'{k}'" for k in PERSONAL_KEYS) + "]"

# ---- helpers ------------------------------------------------------------------------

HELPERS = r"""
-- Whether a role acts as the schema owner: the owner of gdpr_requests, a member of it,
-- or a superuser.  Such a role can change any table directly, so the checks below that
-- bind "everybody else" do not bind it.
CREATE FUNCTION {S}.gdpr_acts_as_owner(r name) RETURNS boolean
LANGUAGE sql STABLE PIN AS $$
    SELECT pg_catalog.pg_has_role(r, c.relowner, 'MEMBER')
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = {SLIT} AND c.relname = 'gdpr_requests'
$$;

-- A personal value in digest form: 'sha256:<hex>' of its text (a string's characters,
-- anything else's JSON), element by element in an array; JSON null and a value already
-- in this form stay as they are, so the function is idempotent.
CREATE FUNCTION {S}.gdpr_digest_personal(v jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE PIN AS $$
BEGIN
    IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
        RETURN v;
    ELSIF jsonb_typeof(v) = 'array' THEN
        RETURN (SELECT coalesce(jsonb_agg({S}.gdpr_digest_personal(e) ORDER BY o), '[]'::jsonb)
                FROM jsonb_array_elements(v) WITH ORDINALITY AS a(e, o));
    ELSIF jsonb_typeof(v) = 'string' AND (v #>> '{}') ~ '^sha256:[0-9a-f]{64}$' THEN
        RETURN v;
    END IF;
    RETURN to_jsonb('sha256:' || encode(sha256(convert_to(
        CASE WHEN jsonb_typeof(v) = 'string' THEN v #>> '{}' ELSE v::text END, 'UTF8')), 'hex'));
END $$;

-- A JSON document with the value of every personal key (at any depth) in digest form.
CREATE FUNCTION {S}.gdpr_mask_personal(j jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE PIN AS $$
BEGIN
    IF jsonb_typeof(j) = 'object' THEN
        RETURN (SELECT coalesce(jsonb_object_agg(k, CASE WHEN k = ANY(KEYS_ARRAY)
                                                         THEN {S}.gdpr_digest_personal(v)
                                                         ELSE {S}.gdpr_mask_personal(v) END), '{}'::jsonb)
                FROM jsonb_each(j) AS e(k, v));
    ELSIF jsonb_typeof(j) = 'array' THEN
        RETURN (SELECT coalesce(jsonb_agg({S}.gdpr_mask_personal(e) ORDER BY o), '[]'::jsonb)
                FROM jsonb_array_elements(j) WITH ORDINALITY AS a(e, o));
    END IF;
    RETURN j;
END $$;

-- The retention period a purge may use: the caller's, but for every login that does not
-- act as the owner never shorter than the floor in gdpr_daemon_settings (0: off / keep
-- forever).  0 means "purge nothing".
CREATE FUNCTION {S}.gdpr_retention_days(p_key text, p_days integer) RETURNS integer
LANGUAGE plpgsql STABLE PIN AS $$
DECLARE
    floor_days integer;
BEGIN
    IF p_days IS NULL OR p_days <= 0 THEN
        RETURN 0;
    END IF;
    IF {S}.gdpr_acts_as_owner(session_user) THEN
        RETURN p_days;
    END IF;
    SELECT CASE WHEN jsonb_typeof(s.value) = 'number' THEN (s.value #>> '{}')::numeric::integer END
    INTO floor_days FROM {S}.gdpr_daemon_settings s WHERE s.key = p_key;
    floor_days := coalesce(floor_days, CASE p_key WHEN 'retention_days' THEN 365 ELSE 2190 END);
    IF floor_days = 0 THEN
        RETURN 0;
    END IF;
    RETURN greatest(p_days, floor_days);
END $$;

-- A name given to a DPO function: trimmed, at most 255 characters, one line.
CREATE FUNCTION {S}.gdpr_checked_name(p_name text, p_what text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PIN AS $$
DECLARE
    n text := nullif(btrim(p_name), '');
BEGIN
    IF n ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION '% contains a control character; write it on one line', p_what
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(n) > 255 THEN
        RAISE EXCEPTION '% is longer than 255 characters', p_what USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN n;
END $$;

-- The chain lock: the first row a transaction adds to a chain marks that chain's row of
-- integrity_chains as its own (only the owner can update it), which locks it until the
-- transaction ends.  Returns the chain's base as it is under the lock.
CREATE FUNCTION {S}.integrity_chain_take(p_chain text, OUT base_seq bigint, OUT base_hash bytea)
LANGUAGE plpgsql SECURITY DEFINER PIN SET lock_timeout = 'LOCK_TIMEOUT' AS $$
BEGIN
    UPDATE {S}.integrity_chains c SET writer_xact = pg_current_xact_id()
    WHERE c.chain = p_chain RETURNING c.base_seq, c.base_hash INTO base_seq, base_hash;
EXCEPTION WHEN lock_not_available THEN
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure', MESSAGE = format(
        'the %s hash chain stayed locked by another transaction for %s; nothing was written, try again',
        p_chain, current_setting('lock_timeout')),
        HINT = 'A session that wrote history or events holds it until it commits '
               || '(pg_stat_activity: idle in transaction).';
END $$;
REVOKE ALL ON FUNCTION {S}.integrity_chain_take(text) FROM PUBLIC;
"""

# ---- the schema changes ---------------------------------------------------------------

COLUMNS = r"""
ALTER TABLE {S}.integrity_chains ADD COLUMN writer_xact xid8, ADD COLUMN scrubbed_seq bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN {S}.integrity_chains.writer_xact IS
    'The transaction that last added rows to the chain; updating it is the chain lock (owner only).';
COMMENT ON COLUMN {S}.integrity_chains.scrubbed_seq IS
    'audit_events: the retention purge has put personal keys in digest form up to this chain_seq.';
ALTER TABLE {S}.integrity_checkpoints ADD COLUMN kind text NOT NULL DEFAULT 'purge'
        CONSTRAINT integrity_checkpoint_kind_is_known CHECK (kind IN ('purge', 'rehash')),
    ADD COLUMN newest_at timestamptz;
COMMENT ON COLUMN {S}.integrity_checkpoints.kind IS
    'purge: rows from_seq+1..to_seq were deleted (base_hash: row_hash of to_seq); rehash: rows from_seq+1..to_seq '
    'got new hashes when migration 0005 put personal keys of events in digest form (base_hash: the new head hash).';
COMMENT ON COLUMN {S}.integrity_checkpoints.newest_at IS
    'purge: the time of the newest row deleted (at, or ingested_at for events).';

ALTER TABLE {S}.gdpr_requests ADD COLUMN entered_login text, ADD COLUMN approved_login text;
COMMENT ON COLUMN {S}.gdpr_requests.entered_login IS 'The database login (session_user) that inserted the request.';
COMMENT ON COLUMN {S}.gdpr_requests.approved_login IS 'The database login (session_user) that approved it (four eyes).';
ALTER TABLE {S}.gdpr_requests ALTER COLUMN requested_by SET DEFAULT session_user;

-- Retention floors the purge functions enforce (written by `gdpr-daemon migrate` and the
-- daemon from the configuration; the defaults of the configuration until then).
INSERT INTO {S}.gdpr_daemon_settings (key, value)
VALUES ('retention_days', '365'::jsonb), ('retention_history_days', '2190'::jsonb)
ON CONFLICT (key) DO NOTHING;
"""

# Rows already present that the new bounds refuse: repaired, with a history row each.
REPAIR = r"""
DO $$
DECLARE
    r record;
    fixed_received timestamptz;
    notes text[];
BEGIN
    ALTER TABLE {S}.gdpr_requests DISABLE TRIGGER gdpr_requests_guard_due_at;
    FOR r IN SELECT * FROM {S}.gdpr_requests
             WHERE NOT (received_at >= 'MIN_DATE' AND received_at < 'MAX_RECEIVED')
                OR NOT (due_at >= 'MIN_DATE' AND due_at < 'MAX_DUE')
                OR length(requested_by) > 255 OR requested_by ~ '[[:cntrl:]]'
                OR length(approved_by) > 255 OR approved_by ~ '[[:cntrl:]]'
             ORDER BY id LOOP
        notes := '{}';
        fixed_received := r.received_at;
        IF NOT (r.received_at >= 'MIN_DATE' AND r.received_at < 'MAX_RECEIVED') THEN
            fixed_received := CASE WHEN r.created_at >= 'MIN_DATE' AND r.created_at < 'MAX_RECEIVED'
                                   THEN r.created_at ELSE now() END;
            notes := notes || format('received_at %s was outside 2000-2199 and is now %s (when it was entered)',
                                     r.received_at, fixed_received);
        END IF;
        IF fixed_received IS DISTINCT FROM r.received_at OR NOT (r.due_at >= 'MIN_DATE' AND r.due_at < 'MAX_DUE') THEN
            notes := notes || format('due_at %s recomputed from received_at', r.due_at);
        END IF;
        IF length(r.requested_by) > 255 OR r.requested_by ~ '[[:cntrl:]]' THEN
            notes := notes || 'requested_by cut to one line of 255 characters'::text;
        END IF;
        IF length(r.approved_by) > 255 OR r.approved_by ~ '[[:cntrl:]]' THEN
            notes := notes || 'approved_by cut to one line of 255 characters'::text;
        END IF;
        UPDATE {S}.gdpr_requests g SET
            received_at = fixed_received,
            due_at = CASE WHEN fixed_received IS DISTINCT FROM r.received_at
                               OR NOT (r.due_at >= 'MIN_DATE' AND r.due_at < 'MAX_DUE')
                          THEN {S}.gdpr_due_at(fixed_received) ELSE g.due_at END,
            original_due_at = CASE WHEN fixed_received IS DISTINCT FROM r.received_at THEN NULL
                                   ELSE g.original_due_at END,
            requested_by = left(regexp_replace(g.requested_by, '[[:cntrl:]]', ' ', 'g'), 255),
            approved_by = left(regexp_replace(g.approved_by, '[[:cntrl:]]', ' ', 'g'), 255)
        WHERE g.id = r.id;
        INSERT INTO {S}.gdpr_request_log (request_id, from_status, to_status, detail, actor)
        VALUES (r.id, r.status, r.status, left('repaired by migration 0005: ' || array_to_string(notes, '; '), 4000),
                'gdpr-daemon migrate');
    END LOOP;
    ALTER TABLE {S}.gdpr_requests ENABLE TRIGGER gdpr_requests_guard_due_at;
END $$;
"""

CHECKS = r"""
ALTER TABLE {S}.gdpr_requests
    ADD CONSTRAINT received_at_from_2000_to_2199 CHECK (received_at >= 'MIN_DATE' AND received_at < 'MAX_RECEIVED'),
    ADD CONSTRAINT due_at_from_2000_to_2200 CHECK (due_at >= 'MIN_DATE' AND due_at < 'MAX_DUE'),
    ADD CONSTRAINT requested_by_at_most_255_characters CHECK (length(requested_by) <= 255),
    ADD CONSTRAINT requested_by_no_control_characters CHECK (requested_by !~ '[[:cntrl:]]'),
    ADD CONSTRAINT approved_by_at_most_255_characters CHECK (length(approved_by) <= 255),
    ADD CONSTRAINT approved_by_no_control_characters CHECK (approved_by !~ '[[:cntrl:]]');

-- The history is append-only, so rows already longer stay (NOT VALID); every new row is held to it.
ALTER TABLE {S}.gdpr_request_log
    ADD CONSTRAINT history_detail_at_most_4000_characters CHECK (length(detail) <= 4000) NOT VALID,
    ADD CONSTRAINT history_actor_at_most_255_characters CHECK (length(actor) <= 255) NOT VALID;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM {S}.gdpr_request_log WHERE length(detail) > 4000) THEN
        ALTER TABLE {S}.gdpr_request_log VALIDATE CONSTRAINT history_detail_at_most_4000_characters;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM {S}.gdpr_request_log WHERE length(actor) > 255) THEN
        ALTER TABLE {S}.gdpr_request_log VALIDATE CONSTRAINT history_actor_at_most_255_characters;
    END IF;
END $$;
"""

# ---- 0001: deadline, insert, notify, history of the insert -----------------------------

INTAKE = r"""
CREATE OR REPLACE FUNCTION {S}.gdpr_due_at(received timestamptz, months integer DEFAULT 1)
RETURNS timestamptz LANGUAGE plpgsql STABLE PIN AS $$
DECLARE
    d timestamp := (received AT TIME ZONE 'UTC') + make_interval(months => months);
BEGIN
    WHILE extract(isodow FROM d) IN (6, 7)
          OR EXISTS (SELECT 1 FROM {S}.gdpr_holidays h WHERE h.day = d::date) LOOP
        d := d + interval '1 day';
    END LOOP;
    RETURN d AT TIME ZONE 'UTC';
END $$;

-- Who entered it is the login; a name someone declares counts only for a login that acts
-- as the owner (an administrator's script, the demo), which could write any name anyway.
CREATE OR REPLACE FUNCTION {S}.gdpr_requests_before_insert() RETURNS trigger
LANGUAGE plpgsql PIN AS $$
BEGIN
    NEW.entered_login := session_user;
    NEW.approved_login := NULL;
    IF nullif(btrim(NEW.requested_by), '') IS NULL OR NOT {S}.gdpr_acts_as_owner(session_user) THEN
        NEW.requested_by := session_user;
    END IF;
    -- Said here, before the deadline is computed from it (the CHECK on due_at would come first).
    IF NOT (NEW.received_at >= 'MIN_DATE' AND NEW.received_at < 'MAX_RECEIVED') THEN
        RAISE EXCEPTION 'received_at % is not between 2000 and 2199', NEW.received_at
            USING ERRCODE = 'check_violation', CONSTRAINT = 'received_at_from_2000_to_2199';
    END IF;
    NEW.due_at := coalesce(NEW.due_at, {S}.gdpr_due_at(NEW.received_at));
    IF NEW.status = 'pending' AND coalesce(
        (SELECT s.value = 'true'::jsonb FROM {S}.gdpr_daemon_settings s WHERE s.key = 'require_approval'), false)
    THEN
        NEW.status := 'awaiting_approval';
        NEW.approved_by := NULL;
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION {S}.gdpr_requests_notify() RETURNS trigger LANGUAGE plpgsql PIN AS $$
BEGIN
    PERFORM pg_notify('gdpr_requests', '');
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION {S}.gdpr_requests_log_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER PIN AS $$
BEGIN
    INSERT INTO {S}.gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT n.id, NULL, n.status, 'received ' || n.request_type || ' request', coalesce(n.requested_by, session_user)
    FROM new_rows n;
    RETURN NULL;
END $$;
REVOKE ALL ON FUNCTION {S}.gdpr_requests_log_insert() FROM PUBLIC;

-- What a DPO entered cannot be changed by a login that does not act as the owner (the
-- column grants of roles.sql say the same; this holds even if someone grants more).
-- The rectify value may only be erased, keeping its digest.
CREATE FUNCTION {S}.gdpr_requests_guard_entered() RETURNS trigger LANGUAGE plpgsql PIN AS $$
BEGIN
    IF {S}.gdpr_acts_as_owner(current_user) THEN
        RETURN NEW;
    END IF;
    IF (NEW.request_type, NEW.service_id, NEW.table_name, NEW.record_id, NEW.field, NEW.comment, NEW.external_ref,
        NEW.received_at, NEW.requested_by, NEW.approved_by, NEW.entered_login, NEW.approved_login,
        NEW.record_id_sha256, NEW.purged_at, NEW.created_at)
       IS DISTINCT FROM
       (OLD.request_type, OLD.service_id, OLD.table_name, OLD.record_id, OLD.field, OLD.comment, OLD.external_ref,
        OLD.received_at, OLD.requested_by, OLD.approved_by, OLD.entered_login, OLD.approved_login,
        OLD.record_id_sha256, OLD.purged_at, OLD.created_at) THEN
        RAISE EXCEPTION 'what the DPO entered in request % cannot be changed by %', OLD.id, current_user
            USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'entered_fields_unchanged';
    END IF;
    IF NEW.value IS DISTINCT FROM OLD.value AND NEW.value IS NOT NULL THEN
        RAISE EXCEPTION 'the rectify value of request % can only be erased, not changed', OLD.id
            USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'value_only_erased';
    END IF;
    IF NEW.value_sha256 IS DISTINCT FROM OLD.value_sha256
       AND (OLD.value IS NULL OR NEW.value_sha256 IS DISTINCT FROM encode(sha256(convert_to(OLD.value, 'UTF8')), 'hex'))
       OR NEW.value IS NULL AND OLD.value IS NOT NULL
          AND NEW.value_sha256 IS DISTINCT FROM encode(sha256(convert_to(OLD.value, 'UTF8')), 'hex') THEN
        RAISE EXCEPTION 'value_sha256 of request % is the SHA-256 of its value, kept when the value is erased', OLD.id
            USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'value_sha256_is_its_digest';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER gdpr_requests_guard_entered BEFORE UPDATE ON {S}.gdpr_requests FOR EACH ROW
    WHEN (OLD.value IS DISTINCT FROM NEW.value OR OLD.value_sha256 IS DISTINCT FROM NEW.value_sha256
          OR OLD.record_id IS DISTINCT FROM NEW.record_id OR OLD.table_name IS DISTINCT FROM NEW.table_name
          OR OLD.service_id IS DISTINCT FROM NEW.service_id OR OLD.request_type IS DISTINCT FROM NEW.request_type
          OR OLD.field IS DISTINCT FROM NEW.field OR OLD.comment IS DISTINCT FROM NEW.comment
          OR OLD.external_ref IS DISTINCT FROM NEW.external_ref OR OLD.received_at IS DISTINCT FROM NEW.received_at
          OR OLD.requested_by IS DISTINCT FROM NEW.requested_by OR OLD.approved_by IS DISTINCT FROM NEW.approved_by
          OR OLD.entered_login IS DISTINCT FROM NEW.entered_login
          OR OLD.approved_login IS DISTINCT FROM NEW.approved_login
          OR OLD.record_id_sha256 IS DISTINCT FROM NEW.record_id_sha256
          OR OLD.purged_at IS DISTINCT FROM NEW.purged_at OR OLD.created_at IS DISTINCT FROM NEW.created_at)
    EXECUTE FUNCTION {S}.gdpr_requests_guard_entered();
"""

# ---- 0003: four eyes, deadlines, retry ---------------------------------------------------

DPO = r"""
CREATE OR REPLACE FUNCTION {S}.gdpr_requests_guard_approval() RETURNS trigger LANGUAGE plpgsql PIN AS $$
BEGIN
    IF NEW.approved_by IS NULL OR NEW.approved_by !~ '[^[:space:]]' THEN
        RAISE EXCEPTION 'request % awaits approval by a second person', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_needs_approver';
    END IF;
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION {S}.gdpr_requests_guard_due_at() RETURNS trigger LANGUAGE plpgsql PIN AS $$
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
    IF NEW.due_at > {S}.gdpr_due_at(OLD.received_at, 3) THEN
        RAISE EXCEPTION 'the deadline of request % can be extended by at most two further months', OLD.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'deadline_extension_at_most_two_months';
    END IF;
    NEW.original_due_at := OLD.due_at;
    RETURN NEW;
END $$;

-- Four eyes between logins: the approver is the login (or, for a login acting as the
-- owner, the name it gives); refused when the same login entered the request, when the
-- names match, and when nobody knows who entered it.
CREATE OR REPLACE FUNCTION {S}.gdpr_approve_requests(p_ids bigint[], p_actor text DEFAULT NULL)
RETURNS bigint[] LANGUAGE plpgsql SECURITY DEFINER PIN AS $$
DECLARE
    as_owner boolean := {S}.gdpr_acts_as_owner(session_user);
    who text := CASE WHEN as_owner THEN coalesce({S}.gdpr_checked_name(p_actor, 'the approver''s name'), session_user)
                     ELSE session_user END;
    wanted bigint[] := ARRAY(SELECT DISTINCT i FROM unnest(p_ids) AS i WHERE i IS NOT NULL ORDER BY i);
    r record;
    problems text[] := '{}';
BEGIN
    PERFORM 1 FROM {S}.gdpr_requests WHERE id = ANY(wanted) ORDER BY id FOR UPDATE;
    FOR r IN SELECT w.i AS id, g.id IS NOT NULL AS found, g.status, g.requested_by, g.approved_by, g.entered_login
             FROM unnest(wanted) AS w(i) LEFT JOIN {S}.gdpr_requests g ON g.id = w.i ORDER BY w.i LOOP
        IF NOT r.found THEN
            problems := problems || format('there is no request %s.', r.id);
        ELSIF r.status <> 'awaiting_approval' AND r.approved_by IS NOT NULL THEN
            problems := problems || format('request %s was approved already, by %s.', r.id, r.approved_by);
        ELSIF r.status <> 'awaiting_approval' THEN
            problems := problems || format('request %s is %s, not awaiting approval.', r.id, r.status);
        ELSIF nullif(btrim(r.requested_by), '') IS NULL AND r.entered_login IS NULL THEN
            problems := problems || format(
                'request %s has no record of who entered it, so four eyes cannot be checked; '
                || 'cancel it and enter it again.', r.id);
        ELSIF lower(btrim(r.requested_by)) = lower(btrim(who)) THEN
            problems := problems || format(
                'request %s was entered by %s; four eyes need a different person to approve it.', r.id, r.requested_by);
        ELSIF NOT as_owner AND r.entered_login = session_user THEN
            problems := problems || format(
                'request %s was entered by the database login %s; four eyes need a different login to approve it.',
                r.id, r.entered_login);
        END IF;
    END LOOP;
    IF cardinality(wanted) = 0 THEN
        problems := problems || 'give the ids of the requests to approve.'::text;
    END IF;
    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state', MESSAGE =
            array_to_string(problems[1:20], E'\n') || CASE WHEN cardinality(problems) > 20
                THEN format(E'\n... and %s more; nothing was approved.', cardinality(problems) - 20)
                ELSE E'\nNothing was approved.' END;
    END IF;
    UPDATE {S}.gdpr_requests SET status = 'pending', approved_by = who, approved_login = session_user,
                                 next_attempt_at = now(), updated_at = now()
    WHERE id = ANY(wanted);
    -- Both names in the history: the approver as actor, who entered it in the sentence,
    -- and the database login when it is not the name given.
    INSERT INTO {S}.gdpr_request_log (request_id, from_status, to_status, detail, actor)
    SELECT id, 'awaiting_approval', 'pending',
           'approved by ' || who || ' (four eyes); entered by ' || coalesce(requested_by, 'unknown')
           || CASE WHEN session_user <> who THEN '; database login ' || session_user ELSE '' END,
           who
    FROM {S}.gdpr_requests WHERE id = ANY(wanted) ORDER BY id;
    PERFORM pg_notify('gdpr_requests', '');
    RETURN wanted;
END $$;
REVOKE ALL ON FUNCTION {S}.gdpr_approve_requests(bigint[], text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION {S}.gdpr_extend_deadline(p_id bigint, p_months integer, p_reason text,
                                                    p_actor text DEFAULT NULL,
                                                    OUT first_due_at timestamptz, OUT new_due_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER PIN AS $$
DECLARE
    who text := CASE WHEN {S}.gdpr_acts_as_owner(session_user)
                     THEN coalesce({S}.gdpr_checked_name(p_actor, 'the name'), session_user) ELSE session_user END;
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
    FROM {S}.gdpr_requests g WHERE g.id = p_id FOR UPDATE;
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
    UPDATE {S}.gdpr_requests g SET due_at = {S}.gdpr_due_at(r.received_at, 1 + p_months), updated_at = now()
    WHERE g.id = p_id RETURNING g.original_due_at, g.due_at INTO first_due_at, new_due_at;
    IF first_due_at IS NULL THEN  -- the deadline was as late as this already (set by hand)
        RAISE EXCEPTION 'the deadline of request % is % already; nothing to extend',
            p_id, to_char(new_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    INSERT INTO {S}.gdpr_request_log (request_id, from_status, to_status, detail, actor)
    VALUES (p_id, r.status, r.status,
            format('deadline extended by %s further %s (GDPR Art. 12(3)) from %s to %s: %s',
                   p_months, CASE p_months WHEN 1 THEN 'month' ELSE 'months' END,
                   to_char(first_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                   to_char(new_due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), why),
            who);
END $$;
REVOKE ALL ON FUNCTION {S}.gdpr_extend_deadline(bigint, integer, text, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION {S}.gdpr_retry_request(p_id bigint, p_actor text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER PIN AS $$
DECLARE
    who text := CASE WHEN {S}.gdpr_acts_as_owner(session_user)
                     THEN coalesce({S}.gdpr_checked_name(p_actor, 'the name'), session_user) ELSE session_user END;
    st text;
BEGIN
    SELECT status INTO st FROM {S}.gdpr_requests WHERE id = p_id FOR UPDATE;
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
    UPDATE {S}.gdpr_requests SET status = 'pending', attempts = 0, next_attempt_at = now(), last_error = NULL,
                                 updated_at = now()
    WHERE id = p_id;
    INSERT INTO {S}.gdpr_request_log (request_id, from_status, to_status, detail, actor)
    VALUES (p_id, st, 'pending', 'retried by the DPO: attempts start again', who);
    PERFORM pg_notify('gdpr_requests', '');
END $$;
REVOKE ALL ON FUNCTION {S}.gdpr_retry_request(bigint, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION {S}.gdpr_cancel_request(p_id bigint, p_actor text DEFAULT NULL, p_reason text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER PIN AS $$
DECLARE
    who text := CASE WHEN {S}.gdpr_acts_as_owner(session_user)
                     THEN coalesce({S}.gdpr_checked_name(p_actor, 'the name'), session_user) ELSE session_user END;
    why text := nullif(btrim(p_reason), '');
    st text;
BEGIN
    IF why ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'the reason contains a control character; write it on one line'
            USING ERRCODE = 'invalid_parameter_value';
    ELSIF length(why) > 1000 THEN
        RAISE EXCEPTION 'the reason is longer than 1000 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT status INTO st FROM {S}.gdpr_requests WHERE id = p_id FOR NO KEY UPDATE;
    IF st IS NULL THEN
        RAISE EXCEPTION 'there is no request %', p_id USING ERRCODE = 'no_data_found';
    END IF;
    IF st NOT IN ('awaiting_approval', 'pending', 'failed', 'rejected') THEN
        RAISE EXCEPTION 'request % is %; only requests not yet submitted can be cancelled', p_id, st
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE {S}.gdpr_requests SET status = 'cancelled', updated_at = now() WHERE id = p_id;
    INSERT INTO {S}.gdpr_request_log (request_id, from_status, to_status, detail, actor)
    VALUES (p_id, st, 'cancelled', 'cancelled by the DPO' || coalesce(': ' || why, ''), who);
END $$;
REVOKE ALL ON FUNCTION {S}.gdpr_cancel_request(bigint, text, text) FROM PUBLIC;
"""

# ---- 0004: chains, append-only, purge ------------------------------------------------------

CHAINS = r"""
CREATE OR REPLACE FUNCTION {S}.gdpr_request_log_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER PIN AS $$
DECLARE
    c record;
    prev_seq bigint;
    prev_hash bytea;
BEGIN
    SELECT ic.writer_xact, ic.base_seq, ic.base_hash INTO c
    FROM {S}.integrity_chains ic WHERE ic.chain = 'gdpr_request_log';
    IF c.writer_xact IS DISTINCT FROM pg_current_xact_id() THEN
        SELECT NULL::xid8 AS writer_xact, t.base_seq, t.base_hash INTO c
        FROM {S}.integrity_chain_take('gdpr_request_log') t;
    END IF;
    NEW.at := clock_timestamp();  -- the database's clock, whatever the inserter sent
    SELECT l.chain_seq, l.row_hash INTO prev_seq, prev_hash
    FROM {S}.gdpr_request_log l ORDER BY l.chain_seq DESC LIMIT 1;
    IF prev_seq IS NULL OR prev_seq < c.base_seq THEN
        prev_seq := c.base_seq;
        prev_hash := c.base_hash;
    END IF;
    NEW.chain_seq := prev_seq + 1;
    NEW.row_hash := sha256(prev_hash || convert_to(LOG_BODY, 'UTF8'));
    RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION {S}.gdpr_request_log_chain() FROM PUBLIC;

CREATE OR REPLACE FUNCTION {S}.audit_events_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER PIN AS $$
DECLARE
    c record;
    prev_seq bigint;
    prev_hash bytea;
    p_text text;
    r_text text;
BEGIN
    SELECT ic.writer_xact, ic.base_seq, ic.base_hash INTO c
    FROM {S}.integrity_chains ic WHERE ic.chain = 'audit_events';
    IF c.writer_xact IS DISTINCT FROM pg_current_xact_id() THEN
        SELECT NULL::xid8 AS writer_xact, t.base_seq, t.base_hash INTO c
        FROM {S}.integrity_chain_take('audit_events') t;
    END IF;
    -- What ON CONFLICT (event_id) DO NOTHING would do, before the row takes a chain place.
    IF EXISTS (SELECT 1 FROM {S}.audit_events e WHERE e.event_id = NEW.event_id) THEN
        RETURN NULL;
    END IF;
    SELECT e.chain_seq, e.row_hash INTO prev_seq, prev_hash
    FROM {S}.audit_events e ORDER BY e.chain_seq DESC LIMIT 1;
    IF prev_seq IS NULL OR prev_seq < c.base_seq THEN
        prev_seq := c.base_seq;
        prev_hash := c.base_hash;
    END IF;
    NEW.chain_seq := prev_seq + 1;
    p_text := MASKED_PARAMETERS;
    r_text := MASKED_RAW;
    NEW.row_hash := sha256(prev_hash || convert_to(EVENTS_BODY, 'UTF8'));
    RETURN NEW;
END $$;
REVOKE ALL ON FUNCTION {S}.audit_events_chain() FROM PUBLIC;

CREATE OR REPLACE FUNCTION {S}.integrity_refuse_change() RETURNS trigger LANGUAGE plpgsql PIN AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_TABLE_NAME || '_append_only',
              HINT = 'Rows leave it only through the retention purge (gdpr-daemon purge).';
END $$;

CREATE OR REPLACE FUNCTION {S}.integrity_delete_only_purged() RETURNS trigger LANGUAGE plpgsql PIN AS $$
BEGIN
    IF OLD.chain_seq <= (SELECT c.base_seq FROM {S}.integrity_chains c WHERE c.chain = TG_TABLE_NAME) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: DELETE is refused', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_TABLE_NAME || '_append_only',
              HINT = 'Rows leave it only through the retention purge (gdpr-daemon purge).';
END $$;

-- Events stay append-only, but for one change: personal keys put in the digest form the
-- hash already covers (the retention purge's scrub), which leaves the chain verifying.
CREATE FUNCTION {S}.audit_events_only_scrubbed() RETURNS trigger LANGUAGE plpgsql PIN AS $$
BEGIN
    IF (NEW.event_id, NEW.created_at, NEW.key, NEW.source, NEW.user_email, NEW.user_id, NEW.ip_address,
        NEW.service_id, NEW.ingested_at, NEW.chain_seq, NEW.row_hash)
       IS NOT DISTINCT FROM
       (OLD.event_id, OLD.created_at, OLD.key, OLD.source, OLD.user_email, OLD.user_id, OLD.ip_address,
        OLD.service_id, OLD.ingested_at, OLD.chain_seq, OLD.row_hash)
       AND NEW.parameters IS NOT DISTINCT FROM {S}.gdpr_mask_personal(OLD.parameters)
       AND NEW.raw IS NOT DISTINCT FROM {S}.gdpr_mask_personal(OLD.raw) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only: UPDATE is refused'
        USING ERRCODE = 'restrict_violation', CONSTRAINT = 'audit_events_append_only',
              HINT = 'Only the retention purge changes events, putting personal keys in digest form.';
END $$;
DROP TRIGGER audit_events_no_update ON {S}.audit_events;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON {S}.audit_events
    FOR EACH ROW EXECUTE FUNCTION {S}.audit_events_only_scrubbed();

-- A base moves forward only, onto a row of its chain whose hash it copies; each move is
-- recorded, with the time of the newest row it passes.
CREATE OR REPLACE FUNCTION {S}.integrity_chains_guard() RETURNS trigger LANGUAGE plpgsql PIN AS $$
DECLARE
    h bytea;
    newest timestamptz;
BEGIN
    IF NEW.chain <> OLD.chain OR NEW.base_seq < OLD.base_seq THEN
        RAISE EXCEPTION 'a chain base only moves forward' USING ERRCODE = 'restrict_violation',
            CONSTRAINT = 'integrity_chains_forward_only';
    END IF;
    IF NEW.base_seq = OLD.base_seq THEN
        IF NEW.base_hash <> OLD.base_hash THEN
            RAISE EXCEPTION 'a chain base hash cannot change in place' USING ERRCODE = 'restrict_violation',
                CONSTRAINT = 'integrity_chains_forward_only';
        END IF;
        RETURN NEW;
    END IF;
    EXECUTE format('SELECT row_hash, (SELECT max(%2$I) FROM {S}.%1$I WHERE chain_seq > $2 AND chain_seq <= $1) '
                   'FROM {S}.%1$I WHERE chain_seq = $1',
                   NEW.chain, CASE NEW.chain WHEN 'gdpr_request_log' THEN 'at' ELSE 'ingested_at' END)
        INTO h, newest USING NEW.base_seq, OLD.base_seq;
    IF h IS DISTINCT FROM NEW.base_hash THEN
        RAISE EXCEPTION 'the new base of % must be the hash of its row %', NEW.chain, NEW.base_seq
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'integrity_chains_base_is_a_row';
    END IF;
    INSERT INTO {S}.integrity_checkpoints (chain, from_seq, to_seq, base_hash, newest_at)
    VALUES (NEW.chain, OLD.base_seq, NEW.base_seq, NEW.base_hash, newest);
    NEW.updated_at := now();
    RETURN NEW;
END $$;
DROP TRIGGER integrity_chains_guard ON {S}.integrity_chains;
CREATE TRIGGER integrity_chains_guard BEFORE UPDATE ON {S}.integrity_chains FOR EACH ROW
    WHEN (OLD.chain IS DISTINCT FROM NEW.chain OR OLD.base_seq IS DISTINCT FROM NEW.base_seq
          OR OLD.base_hash IS DISTINCT FROM NEW.base_hash)
    EXECUTE FUNCTION {S}.integrity_chains_guard();

-- The history purge (see 0004), with the retention floor of gdpr_daemon_settings for
-- every login that does not act as the owner, and the chain lock bounded.
CREATE OR REPLACE FUNCTION {S}.gdpr_purge_chain(p_chain text, p_cutoff timestamptz, p_limit integer DEFAULT 10000)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER PIN AS $$
DECLARE
    base bigint;
    last_seq bigint;
    last_hash bytea;
    days integer;
    cutoff timestamptz := p_cutoff;
    n bigint := 0;
BEGIN
    IF p_chain IS NULL OR p_chain NOT IN ('gdpr_request_log', 'audit_events') THEN
        RAISE EXCEPTION 'unknown chain %', p_chain USING ERRCODE = 'invalid_parameter_value';
    ELSIF p_cutoff IS NULL OR p_cutoff > now() - interval '1 day' THEN
        RAISE EXCEPTION 'the retention purge keeps at least the last day (cutoff %)', p_cutoff
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT {S}.gdpr_acts_as_owner(session_user) THEN
        days := {S}.gdpr_retention_days('retention_history_days', 1);
        IF days = 0 THEN
            RETURN 0;  -- history kept forever
        END IF;
        cutoff := least(p_cutoff, now() - make_interval(days => days));
    END IF;
    SELECT t.base_seq INTO base FROM {S}.integrity_chain_take(p_chain) t;
    EXECUTE format($q$
        WITH head AS (
            SELECT chain_seq, row_hash, %2$I AS t FROM {S}.%1$I WHERE chain_seq > $1 ORDER BY chain_seq LIMIT $3
        )
        SELECT chain_seq, row_hash FROM head
        WHERE chain_seq < coalesce((SELECT min(chain_seq) FROM head WHERE t >= $2), 9223372036854775807)
        ORDER BY chain_seq DESC LIMIT 1 $q$,
        p_chain, CASE p_chain WHEN 'gdpr_request_log' THEN 'at' ELSE 'created_at' END)
    INTO last_seq, last_hash USING base, cutoff, p_limit;
    IF last_seq IS NOT NULL THEN
        UPDATE {S}.integrity_chains SET base_seq = last_seq, base_hash = last_hash WHERE chain = p_chain;
        EXECUTE format('DELETE FROM {S}.%I WHERE chain_seq > $1 AND chain_seq <= $2', p_chain) USING base, last_seq;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    IF p_chain = 'gdpr_request_log' THEN
        DELETE FROM {S}.gdpr_requests r
        WHERE r.id IN (SELECT q.id FROM {S}.gdpr_requests q
                       WHERE q.status IN ('submitted', 'failed', 'rejected', 'cancelled')
                         AND q.updated_at < cutoff
                         AND NOT EXISTS (SELECT 1 FROM {S}.gdpr_request_log l WHERE l.request_id = q.id)
                       LIMIT p_limit);
    ELSE
        DELETE FROM {S}.audit_quarantine q WHERE q.received_at < cutoff;
    END IF;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION {S}.gdpr_purge_chain(text, timestamptz, integer) FROM PUBLIC;

-- Personal fields of finished requests past the retention (was an UPDATE the daemon's
-- role ran itself; now that role may not touch record_id or comment at all).
CREATE FUNCTION {S}.gdpr_purge_personal_fields(p_days integer, p_limit integer, p_actor text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER PIN AS $$
DECLARE
    days integer := {S}.gdpr_retention_days('retention_days', p_days);
    who text := coalesce({S}.gdpr_checked_name(p_actor, 'the name'), session_user);
    n bigint;
BEGIN
    IF days = 0 THEN
        RETURN 0;
    END IF;
    WITH x AS (
        SELECT id FROM {S}.gdpr_requests
        WHERE status IN ('submitted', 'failed', 'rejected', 'cancelled') AND purged_at IS NULL
          AND updated_at < now() - make_interval(days => days)
        ORDER BY id LIMIT p_limit
        FOR NO KEY UPDATE SKIP LOCKED
    ), u AS (
        UPDATE {S}.gdpr_requests r
        SET record_id_sha256 = encode(sha256(convert_to(r.record_id, 'UTF8')), 'hex'),
            record_id = 'purged',
            value_sha256 = CASE WHEN r.value IS NOT NULL THEN encode(sha256(convert_to(r.value, 'UTF8')), 'hex')
                                ELSE r.value_sha256 END,
            value = NULL, comment = NULL, purged_at = now(), updated_at = now()
        FROM x WHERE r.id = x.id AND r.purged_at IS NULL
        RETURNING r.id, r.status
    ), l AS (
        INSERT INTO {S}.gdpr_request_log (request_id, from_status, to_status, detail, actor)
        SELECT id, status, status,
               format('personal fields purged after the retention period of %s days: '
                      'record_id, value and comment removed, their SHA-256 digests kept', days),
               who
        FROM u ORDER BY id
    )
    SELECT count(*) INTO n FROM u;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION {S}.gdpr_purge_personal_fields(integer, integer, text) FROM PUBLIC;

-- Account events past retention_days get their personal keys in digest form, in chain
-- order from where the last run stopped, up to the first event ingested more recently.
CREATE FUNCTION {S}.gdpr_scrub_events(p_days integer, p_limit integer, OUT looked bigint, OUT scrubbed bigint)
LANGUAGE plpgsql SECURITY DEFINER PIN AS $$
DECLARE
    days integer := {S}.gdpr_retention_days('retention_days', p_days);
    done bigint;
    stop_seq bigint;
BEGIN
    looked := 0;
    scrubbed := 0;
    IF days = 0 THEN
        RETURN;
    END IF;
    PERFORM 1 FROM {S}.integrity_chain_take('audit_events');
    SELECT c.scrubbed_seq INTO done FROM {S}.integrity_chains c WHERE c.chain = 'audit_events';
    WITH w AS (
        SELECT e.chain_seq, e.ingested_at < now() - make_interval(days => days) AS old
        FROM {S}.audit_events e WHERE e.chain_seq > done ORDER BY e.chain_seq LIMIT p_limit
    )
    SELECT max(chain_seq) INTO stop_seq FROM w
    WHERE chain_seq < coalesce((SELECT min(chain_seq) FROM w WHERE NOT old), 9223372036854775807);
    IF stop_seq IS NULL THEN
        RETURN;
    END IF;
    UPDATE {S}.audit_events e
    SET parameters = {S}.gdpr_mask_personal(e.parameters), raw = {S}.gdpr_mask_personal(e.raw)
    WHERE e.chain_seq > done AND e.chain_seq <= stop_seq
      AND (e.raw::text ~ 'PERSONAL_KEY_RE' OR e.parameters::text ~ 'PERSONAL_KEY_RE')
      AND (e.raw IS DISTINCT FROM {S}.gdpr_mask_personal(e.raw)
           OR e.parameters IS DISTINCT FROM {S}.gdpr_mask_personal(e.parameters));
    GET DIAGNOSTICS scrubbed = ROW_COUNT;
    UPDATE {S}.integrity_chains SET scrubbed_seq = stop_seq WHERE chain = 'audit_events';
    looked := stop_seq - done;
END $$;
REVOKE ALL ON FUNCTION {S}.gdpr_scrub_events(integer, integer) FROM PUBLIC;

-- What auditors read instead of audit_events: the same rows, personal keys in digest
-- form: exactly the text the chain's hash covers.
CREATE VIEW {S}.audit_events_masked AS
SELECT e.event_id, e.created_at, e.key, e.source, e.user_email, e.user_id, e.ip_address, e.service_id,
       MASKED_E_PARAMETERS AS parameters, MASKED_E_RAW AS raw, e.ingested_at, e.chain_seq, e.row_hash
FROM {S}.audit_events e;
COMMENT ON VIEW {S}.audit_events_masked IS
    'audit_events with the values of personal keys (record ids, values, comments) as sha256:<hex>; '
    'what gdpr_auditor reads and what `gdpr-daemon audit verify` checks.';
"""

# Stored events that hold personal keys get the new hash from the first of them on.
REHASH = r"""
DO $$
DECLARE
    first_seq bigint;
    last_seq bigint;
    h bytea;
    r record;
    p_text text;
    r_text text;
BEGIN
    SELECT min(chain_seq), max(chain_seq) INTO first_seq, last_seq FROM {S}.audit_events
    WHERE raw::text ~ 'PERSONAL_KEY_RE' OR parameters::text ~ 'PERSONAL_KEY_RE';
    IF first_seq IS NULL THEN
        RETURN;
    END IF;
    SELECT max(chain_seq) INTO last_seq FROM {S}.audit_events;
    SELECT e.row_hash INTO h FROM {S}.audit_events e WHERE e.chain_seq < first_seq ORDER BY e.chain_seq DESC LIMIT 1;
    IF h IS NULL THEN
        SELECT c.base_hash INTO h FROM {S}.integrity_chains c WHERE c.chain = 'audit_events';
    END IF;
    ALTER TABLE {S}.audit_events DISABLE TRIGGER audit_events_no_update;
    FOR r IN SELECT * FROM {S}.audit_events WHERE chain_seq >= first_seq ORDER BY chain_seq LOOP
        p_text := MASKED_R_PARAMETERS;
        r_text := MASKED_R_RAW;
        h := sha256(h || convert_to(EVENTS_BODY_OF_ROW, 'UTF8'));
        UPDATE {S}.audit_events SET row_hash = h WHERE chain_seq = r.chain_seq;
    END LOOP;
    ALTER TABLE {S}.audit_events ENABLE TRIGGER audit_events_no_update;
    INSERT INTO {S}.integrity_checkpoints (chain, from_seq, to_seq, base_hash, kind)
    VALUES ('audit_events', first_seq - 1, last_seq, h, 'rehash');
END $$;
"""

# Retention floors: only a login acting as the owner may shorten them (0 means forever).
SETTINGS_GUARD = r"""
CREATE FUNCTION {S}.gdpr_daemon_settings_guard() RETURNS trigger LANGUAGE plpgsql PIN AS $$
DECLARE
    old_days integer;
    new_days integer;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.key IN ('retention_days', 'retention_history_days') AND NOT {S}.gdpr_acts_as_owner(current_user) THEN
            RAISE EXCEPTION 'the retention floor % can be removed only by the schema owner', OLD.key
                USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'retention_floor_only_raised';
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.key NOT IN ('retention_days', 'retention_history_days') THEN
        RETURN NEW;
    END IF;
    IF jsonb_typeof(NEW.value) IS DISTINCT FROM 'number' OR (NEW.value #>> '{}') !~ '^[0-9]{1,5}$'
       OR (NEW.value #>> '{}')::integer > 36500 THEN
        RAISE EXCEPTION '% must be a whole number of days from 0 to 36500', NEW.key
            USING ERRCODE = 'check_violation', CONSTRAINT = 'retention_floor_is_days';
    END IF;
    IF {S}.gdpr_acts_as_owner(current_user) THEN
        RETURN NEW;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        old_days := (OLD.value #>> '{}')::numeric::integer;
    ELSE
        SELECT (s.value #>> '{}')::numeric::integer INTO old_days FROM {S}.gdpr_daemon_settings s WHERE s.key = NEW.key;
        old_days := coalesce(old_days, CASE NEW.key WHEN 'retention_days' THEN 365 ELSE 2190 END);
    END IF;
    new_days := (NEW.value #>> '{}')::integer;
    -- 0 keeps forever: the longest period of all.
    IF new_days <> 0 AND (old_days = 0 OR new_days < old_days) THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'retention_floor_only_raised',
            MESSAGE = format('%s can be shortened (from %s to %s days) only by the schema owner: '
                             'run `gdpr-daemon migrate` with the new configuration', NEW.key,
                             CASE old_days WHEN 0 THEN 'forever' ELSE old_days::text END, new_days);
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER gdpr_daemon_settings_guard BEFORE INSERT OR UPDATE OR DELETE ON {S}.gdpr_daemon_settings
    FOR EACH ROW EXECUTE FUNCTION {S}.gdpr_daemon_settings_guard();
"""


def _fill(sql: str, schema: str, schema_literal: str) -> str:
    masked = {
        "MASKED_PARAMETERS": _masked_text("NEW.parameters"),
        "MASKED_RAW": _masked_text("NEW.raw"),
        "MASKED_R_PARAMETERS": _masked_text("r.parameters"),
        "MASKED_R_RAW": _masked_text("r.raw"),
        "MASKED_E_PARAMETERS": _masked("e.parameters"),
        "MASKED_E_RAW": _masked("e.raw"),
        "EVENTS_BODY_OF_ROW": EVENTS_BODY_OF_ROW,
        "EVENTS_BODY": EVENTS_BODY,
        "LOG_BODY": LOG_BODY,
        "PERSONAL_KEY_RE": PERSONAL_KEY_RE,
        "KEYS_ARRAY": KEYS_ARRAY,
        "LOCK_TIMEOUT": LOCK_TIMEOUT,
        "MIN_DATE": MIN_DATE,
        "MAX_RECEIVED": MAX_RECEIVED,
        "MAX_DUE": MAX_DUE,
        "PIN": PIN,
    }
    for name in sorted(masked, key=len, reverse=True):  # longest first: EVENTS_BODY_OF_ROW before EVENTS_BODY
        sql = sql.replace(name, masked[name])
    return sql.replace("{SLIT}", schema_literal).replace("{S}", schema)


def upgrade_sql(schema: str, schema_literal: str) -> str:
    """The whole upgrade for the schema named ``schema`` (an identifier, quoted as needed)."""
    parts = (HELPERS, COLUMNS, INTAKE, DPO, CHAINS, SETTINGS_GUARD, REPAIR, CHECKS, REHASH)
    return "\n".join(_fill(p, schema, schema_literal) for p in parts)


def _schema() -> tuple[str, str]:
    row = op.get_bind().execute(text("SELECT quote_ident(current_schema()), quote_literal(current_schema())")).one()
    return row[0], row[1]


def upgrade() -> None:
    run_script(op.get_bind(), upgrade_sql(*_schema()))


# ---- downgrade: back to the functions and triggers of 0001-0004 ---------------------------

_CREATE = re.compile(r"CREATE (OR REPLACE )?FUNCTION")
_FUNCTION = re.compile(r"^\s*(?:--[^\n]*\n\s*)*(CREATE (?:OR REPLACE )?FUNCTION|ALTER FUNCTION)\s+(\w+)", re.S)


def _earlier_functions() -> list[str]:
    """The CREATE FUNCTION statements of 0001, 0003 and 0004 (the last of each name), as OR REPLACE."""
    here = Path(__file__).resolve().parent
    found: dict[str, str] = {}
    alters: list[str] = []
    for name in ("0001_requests.py", "0003_dpo_tools.py", "0004_integrity.py"):
        spec = importlib.util.spec_from_file_location(f"_gdpr_migration_{name[:4]}", here / name)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for stmt in split_statements(module.UPGRADE):
            m = _FUNCTION.match(stmt)
            if m is None:
                continue
            if m.group(1) == "ALTER FUNCTION":
                alters.append(stmt)
            else:
                found[m.group(2)] = _CREATE.sub("CREATE OR REPLACE FUNCTION", stmt, count=1)
    return [*found.values(), *alters]


DOWNGRADE = r"""
DROP VIEW {S}.audit_events_masked;
DROP TRIGGER gdpr_daemon_settings_guard ON {S}.gdpr_daemon_settings;
DROP TRIGGER gdpr_requests_guard_entered ON {S}.gdpr_requests;
DROP TRIGGER audit_events_no_update ON {S}.audit_events;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON {S}.audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION {S}.integrity_refuse_change();
DROP TRIGGER integrity_chains_guard ON {S}.integrity_chains;
CREATE TRIGGER integrity_chains_guard BEFORE UPDATE ON {S}.integrity_chains
    FOR EACH ROW EXECUTE FUNCTION {S}.integrity_chains_guard();
DROP FUNCTION {S}.gdpr_scrub_events(integer, integer);
DROP FUNCTION {S}.gdpr_purge_personal_fields(integer, integer, text);
DROP FUNCTION {S}.audit_events_only_scrubbed();
DROP FUNCTION {S}.gdpr_requests_guard_entered();
DROP FUNCTION {S}.gdpr_daemon_settings_guard();
ALTER TABLE {S}.gdpr_request_log DROP CONSTRAINT history_detail_at_most_4000_characters,
    DROP CONSTRAINT history_actor_at_most_255_characters;
ALTER TABLE {S}.gdpr_requests DROP CONSTRAINT received_at_from_2000_to_2199, DROP CONSTRAINT due_at_from_2000_to_2200,
    DROP CONSTRAINT requested_by_at_most_255_characters, DROP CONSTRAINT requested_by_no_control_characters,
    DROP CONSTRAINT approved_by_at_most_255_characters, DROP CONSTRAINT approved_by_no_control_characters;
ALTER TABLE {S}.gdpr_requests ALTER COLUMN requested_by SET DEFAULT current_user;
DELETE FROM {S}.gdpr_daemon_settings WHERE key IN ('retention_days', 'retention_history_days');
"""

DOWNGRADE_LAST = r"""
DROP FUNCTION {S}.integrity_chain_take(text);
DROP FUNCTION {S}.gdpr_checked_name(text, text);
DROP FUNCTION {S}.gdpr_retention_days(text, integer);
DROP FUNCTION {S}.gdpr_mask_personal(jsonb);
DROP FUNCTION {S}.gdpr_digest_personal(jsonb);
DROP FUNCTION {S}.gdpr_acts_as_owner(name);
ALTER TABLE {S}.gdpr_requests DROP COLUMN entered_login, DROP COLUMN approved_login;
ALTER TABLE {S}.integrity_checkpoints DROP COLUMN kind, DROP COLUMN newest_at;
ALTER TABLE {S}.integrity_chains DROP COLUMN writer_xact, DROP COLUMN scrubbed_seq;
"""


def downgrade() -> None:
    schema, literal = _schema()
    bind = op.get_bind()
    run_script(bind, _fill(DOWNGRADE, schema, literal))
    for stmt in _earlier_functions():
        bind.exec_driver_sql(stmt)
    run_script(bind, _fill(DOWNGRADE_LAST, schema, literal))
