"""Tamper evidence and retention: hash chains, append-only history, the purge path.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

Design (why a per-row chain behind a transaction-level lock)
------------------------------------------------------------
``gdpr_request_log`` and ``audit_events`` each carry one hash chain: every row stores
``chain_seq`` (1, 2, 3 ... without gaps) and ``row_hash = sha256(previous row_hash ||
its own contents)``.  A BEFORE INSERT row trigger fills both.  The first row a
transaction inserts takes a transaction-level advisory lock (one key per chain) and
reads the newest row through the unique ``chain_seq`` index; every later row of that
transaction, in the same statement or the next, finds the previous hash in a
transaction-local setting and costs one sha256, no lookup and no lock.  The lock lasts
until commit, so the chain order is the commit order, chain_seq has no gaps (a rolled
back transaction leaves none) and a gap therefore always means a deleted row.

What this costs: log-writing transactions of all replicas queue behind each other from
their first log row to their commit.  The queue already writes its history in batches
at the end of each statement (a claim of 200 rows is one statement, outcomes share a
group commit), so a few dozen short transactions a second take the lock, each holding
it for the tail of one statement and its commit: measured, see the lead's notes and
``bench/drain.py``.  The alternatives were weighed:

* chaining per request (no global lock) cannot see a deleted newest row of a request,
  or a request's whole history deleted, without a second, global anchor whose
  bookkeeping (which rows are committed below an id?) is harder than this lock;
* a statement-level trigger chaining a whole batch can only store per-batch links in a
  side table, because an AFTER trigger cannot set columns of the rows it sees, so a
  changed row is found only to the batch, not named;
* sealing rows later from a background job leaves fresh rows unprotected and writes
  every row twice.

``audit_events`` is written by one puller at a time (it holds the pull lock), so its
chain lock never waits.  ``ON CONFLICT DO NOTHING`` runs BEFORE triggers for rows that
then conflict; the events trigger therefore skips an already stored event_id itself
(under the chain lock, so without a race), which is what DO NOTHING would have done.

Lock order: the chain lock is taken after every gdpr_requests row lock of the statement
(the history rows are inserted by the last CTE of each queue statement); claim and reap
lock request rows FOR NO KEY UPDATE, which does not block the foreign-key check of a
history row, so a late answer's history row never waits for a claim holding the chain.

Append-only: UPDATE and TRUNCATE of either table are refused; DELETE is refused except
for rows at or before the chain's *base* in ``integrity_chains``.  Only the retention
purge moves a base (``gdpr_purge_chain``, SECURITY DEFINER): it sets the base to the
last row it deletes, the database checks that hash and records a row in
``integrity_checkpoints`` (append-only too), and verification starts from the base.

Retention of personal fields (``gdpr_requests``, not append-only): a finished request
past the retention loses record_id, value and comment; SHA-256 digests of record_id and
value stay, and the constraint ``purged_request_stays_finished`` keeps it finished.
"""

from alembic import op

from gdpr_daemon.db.sqlscript import run_script

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LOG_LOCK = 0x6764_7072_636C  # "gdprcl": pg_advisory_xact_lock key of the history chain
EVENTS_LOCK = 0x6764_7072_6365  # "gdprce": of the events chain


def _us(col: str) -> str:
    return f"(extract(epoch FROM {col}) * 1000000)::bigint"


# The contents a row's hash covers, as one text: numbers as digits, texts (and jsonb as
# text) quoted by quote_nullable, so the joined text is unambiguous, and independent of
# session settings once timestamps are integers (microseconds since the epoch).
# db/integrity.py holds the same expressions for verification.
def _q(col: str) -> str:
    return f"quote_nullable({col})"


def log_body(p: str) -> str:
    return (
        f"concat_ws('|', {p}chain_seq, {p}id, {p}request_id, {_us(p + 'at')}, {_q(p + 'from_status')}, "
        f"{_q(p + 'to_status')}, {_q(p + 'detail')}, {_q(p + 'actor')})"
    )


def events_body(p: str) -> str:
    return (
        f"concat_ws('|', {p}chain_seq, {p}event_id, {_us(p + 'created_at')}, {_q(p + 'key')}, {_q(p + 'source')}, "
        f"{_q(p + 'user_email')}, {_q(p + 'user_id')}, {_q(p + 'ip_address')}, {_q(p + 'service_id')}, "
        f"{_q(p + 'parameters::text')}, {_q(p + 'raw::text')}, {_us(p + 'ingested_at')})"
    )


def _chain_trigger(table: str, lock: int, body: str, skip_duplicate: str = "") -> str:
    setting = f"gdpr_daemon.chain_{table}"
    return f"""
CREATE FUNCTION {table}_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    xid text := pg_current_xact_id()::text;
    state text := current_setting('{setting}', true);
    prev_seq bigint;
    prev_hash bytea;
BEGIN
    IF state LIKE xid || ':%' THEN
        prev_seq := split_part(state, ':', 2)::bigint;
        prev_hash := decode(split_part(state, ':', 3), 'hex');
    ELSE
        PERFORM pg_advisory_xact_lock({lock});
        SELECT t.chain_seq, t.row_hash INTO prev_seq, prev_hash
        FROM {table} t ORDER BY t.chain_seq DESC LIMIT 1;
        IF prev_seq IS NULL THEN
            SELECT c.base_seq, c.base_hash INTO prev_seq, prev_hash
            FROM integrity_chains c WHERE c.chain = '{table}';
        END IF;
    END IF;{skip_duplicate}
    NEW.chain_seq := prev_seq + 1;
    NEW.row_hash := sha256(prev_hash || convert_to({body}, 'UTF8'));
    PERFORM set_config('{setting}', xid || ':' || NEW.chain_seq || ':' || encode(NEW.row_hash, 'hex'), true);
    RETURN NEW;
END $$;
CREATE TRIGGER {table}_chain BEFORE INSERT ON {table}
    FOR EACH ROW EXECUTE FUNCTION {table}_chain();
"""  # noqa: S608 - DDL built from this module's constants


def _backfill(table: str, order: str, body: str) -> str:
    return f"""
DO $$
DECLARE
    r record;
    s bigint := 0;
    h bytea := (SELECT base_hash FROM integrity_chains WHERE chain = '{table}');
BEGIN
    FOR r IN SELECT * FROM {table} ORDER BY {order} LOOP
        s := s + 1;
        r.chain_seq := s;
        h := sha256(h || convert_to({body}, 'UTF8'));
        UPDATE {table} SET chain_seq = s, row_hash = h WHERE {order} = r.{order};
    END LOOP;
END $$;
ALTER TABLE {table} ALTER COLUMN chain_seq SET NOT NULL, ALTER COLUMN row_hash SET NOT NULL;
CREATE UNIQUE INDEX {table}_chain_seq_key ON {table} (chain_seq);
"""  # noqa: S608 - DDL built from this module's constants


def _append_only(table: str) -> str:
    return f"""
CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION integrity_refuse_change();
CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
    FOR EACH STATEMENT EXECUTE FUNCTION integrity_refuse_change();
CREATE TRIGGER {table}_delete_only_purged BEFORE DELETE ON {table}
    FOR EACH ROW EXECUTE FUNCTION integrity_delete_only_purged();
"""


UPGRADE = (
    r"""
CREATE TABLE integrity_chains (
    chain       text PRIMARY KEY CONSTRAINT integrity_chain_is_known
                    CHECK (chain IN ('gdpr_request_log', 'audit_events')),
    base_seq    bigint NOT NULL DEFAULT 0,
    base_hash   bytea NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE integrity_chains IS
    'Where each hash chain starts: the last row the retention purge removed (seq 0 and a fixed hash at first).';
-- The genesis hash is sha256 of the text 'gdpr-daemon:' and the table name.
INSERT INTO integrity_chains (chain, base_hash)
SELECT c, sha256(convert_to('gdpr-daemon:' || c, 'UTF8')) FROM unnest(ARRAY['gdpr_request_log', 'audit_events']) c;

CREATE TABLE integrity_checkpoints (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain       text NOT NULL REFERENCES integrity_chains (chain),
    from_seq    bigint NOT NULL,
    to_seq      bigint NOT NULL,
    base_hash   bytea NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    by_role     text NOT NULL DEFAULT session_user
);
COMMENT ON TABLE integrity_checkpoints IS
    'Every move of a chain base: rows from_seq+1..to_seq were purged; base_hash is the row_hash of to_seq.';

ALTER TABLE gdpr_request_log ADD COLUMN chain_seq bigint, ADD COLUMN row_hash bytea;
ALTER TABLE audit_events ADD COLUMN chain_seq bigint, ADD COLUMN row_hash bytea;
COMMENT ON COLUMN gdpr_request_log.row_hash IS
    'sha256(row_hash of chain_seq - 1 || this row''s contents); `gdpr-daemon audit verify` checks the chain.';
COMMENT ON COLUMN audit_events.row_hash IS
    'sha256(row_hash of chain_seq - 1 || this row''s contents); `gdpr-daemon audit verify` checks the chain.';
"""  # noqa: S608 - DDL built from this module's constants
    + _backfill("gdpr_request_log", "id", log_body("r."))
    + _backfill("audit_events", "event_id", events_body("r."))
    + _chain_trigger("gdpr_request_log", LOG_LOCK, log_body("NEW."))
    + _chain_trigger(
        "audit_events",
        EVENTS_LOCK,
        events_body("NEW."),
        skip_duplicate="""
    -- What ON CONFLICT (event_id) DO NOTHING would do, before the row takes a chain place.
    IF EXISTS (SELECT 1 FROM audit_events e WHERE e.event_id = NEW.event_id) THEN
        RETURN NULL;
    END IF;""",
    )
    + r"""
CREATE FUNCTION integrity_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_TABLE_NAME || '_append_only',
              HINT = 'Rows leave it only through the retention purge (gdpr-daemon purge).';
END $$;

CREATE FUNCTION integrity_delete_only_purged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.chain_seq <= (SELECT base_seq FROM integrity_chains WHERE chain = TG_TABLE_NAME) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION '% is append-only: DELETE is refused', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation', CONSTRAINT = TG_TABLE_NAME || '_append_only',
              HINT = 'Rows leave it only through the retention purge (gdpr-daemon purge).';
END $$;
"""
    + _append_only("gdpr_request_log")
    + _append_only("audit_events")
    + r"""
-- A base moves forward only, onto a row of its chain whose hash it copies; each move is
-- recorded.  (The purge then deletes the rows up to it, in the same transaction.)
CREATE FUNCTION integrity_chains_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    h bytea;
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
    EXECUTE format('SELECT row_hash FROM %I WHERE chain_seq = $1', NEW.chain) INTO h USING NEW.base_seq;
    IF h IS DISTINCT FROM NEW.base_hash THEN
        RAISE EXCEPTION 'the new base of % must be the hash of its row %', NEW.chain, NEW.base_seq
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'integrity_chains_base_is_a_row';
    END IF;
    INSERT INTO integrity_checkpoints (chain, from_seq, to_seq, base_hash)
    VALUES (NEW.chain, OLD.base_seq, NEW.base_seq, NEW.base_hash);
    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER integrity_chains_guard BEFORE UPDATE ON integrity_chains
    FOR EACH ROW EXECUTE FUNCTION integrity_chains_guard();
CREATE TRIGGER integrity_chains_no_delete BEFORE DELETE OR TRUNCATE ON integrity_chains
    FOR EACH STATEMENT EXECUTE FUNCTION integrity_refuse_change();
CREATE TRIGGER integrity_checkpoints_no_change BEFORE UPDATE OR DELETE OR TRUNCATE ON integrity_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION integrity_refuse_change();

-- The history purge: the longest prefix of the chain (at most p_limit rows) whose rows
-- are all older than p_cutoff.  Returns the rows deleted; call again until it returns 0.
-- For the history it then deletes finished requests left without any history, for the
-- events the quarantined items older than the cutoff.
CREATE FUNCTION gdpr_purge_chain(p_chain text, p_cutoff timestamptz, p_limit integer DEFAULT 10000)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    base bigint;
    last_seq bigint;
    last_hash bytea;
    n bigint := 0;
BEGIN
    IF p_cutoff > now() - interval '1 day' THEN
        RAISE EXCEPTION 'the retention purge keeps at least the last day (cutoff %)', p_cutoff
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT c.base_seq INTO base FROM integrity_chains c WHERE c.chain = p_chain FOR UPDATE;
    IF base IS NULL THEN
        RAISE EXCEPTION 'unknown chain %', p_chain USING ERRCODE = 'invalid_parameter_value';
    END IF;
    EXECUTE format($q$
        WITH head AS (
            SELECT chain_seq, row_hash, %2$I AS t FROM %1$I WHERE chain_seq > $1 ORDER BY chain_seq LIMIT $3
        )
        SELECT chain_seq, row_hash FROM head
        WHERE chain_seq < coalesce((SELECT min(chain_seq) FROM head WHERE t >= $2), 9223372036854775807)
        ORDER BY chain_seq DESC LIMIT 1 $q$,
        p_chain, CASE p_chain WHEN 'gdpr_request_log' THEN 'at' ELSE 'created_at' END)
    INTO last_seq, last_hash USING base, p_cutoff, p_limit;
    IF last_seq IS NOT NULL THEN
        UPDATE integrity_chains SET base_seq = last_seq, base_hash = last_hash WHERE chain = p_chain;
        EXECUTE format('DELETE FROM %I WHERE chain_seq > $1 AND chain_seq <= $2', p_chain) USING base, last_seq;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    IF p_chain = 'gdpr_request_log' THEN
        DELETE FROM gdpr_requests r
        WHERE r.id IN (SELECT q.id FROM gdpr_requests q
                       WHERE q.status IN ('submitted', 'failed', 'rejected', 'cancelled')
                         AND q.updated_at < p_cutoff
                         AND NOT EXISTS (SELECT 1 FROM gdpr_request_log l WHERE l.request_id = q.id)
                       LIMIT p_limit);
    ELSE
        DELETE FROM audit_quarantine q WHERE q.received_at < p_cutoff;
    END IF;
    RETURN n;
END $$;
REVOKE ALL ON FUNCTION gdpr_purge_chain(text, timestamptz, integer) FROM PUBLIC;

-- Personal fields of finished requests past the retention; see db/integrity.py.
ALTER TABLE gdpr_requests ADD COLUMN purged_at timestamptz, ADD COLUMN record_id_sha256 text;
COMMENT ON COLUMN gdpr_requests.purged_at IS
    'When the retention purge removed record_id, value and comment (their SHA-256 digests stay).';
COMMENT ON COLUMN gdpr_requests.record_id_sha256 IS
    'Hex SHA-256 of the record_id, kept when the retention purge removes it.';
ALTER TABLE gdpr_requests ADD CONSTRAINT purged_request_stays_finished CHECK (
    purged_at IS NULL OR status IN ('submitted', 'failed', 'rejected', 'cancelled'));
-- An empty or blank external_ref would collide with the next one for no reason.
ALTER TABLE gdpr_requests ADD CONSTRAINT external_ref_not_blank CHECK (
    external_ref IS NULL OR external_ref ~ '[^[:space:]]') NOT VALID;

-- The insert trigger writes history as the table owner, so intake roles need no
-- privilege on the history (config/sql/roles.sql).
ALTER FUNCTION gdpr_requests_log_insert() SECURITY DEFINER SET search_path FROM CURRENT;

-- Cancelling, for intake roles that may change nothing else: the status check, the
-- update and its history row in one call.
CREATE FUNCTION gdpr_cancel_request(p_id bigint, p_actor text DEFAULT NULL, p_reason text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    st text;
BEGIN
    SELECT status INTO st FROM gdpr_requests WHERE id = p_id FOR NO KEY UPDATE;
    IF st IS NULL THEN
        RAISE EXCEPTION 'there is no request %', p_id USING ERRCODE = 'no_data_found';
    END IF;
    IF st NOT IN ('awaiting_approval', 'pending', 'failed', 'rejected') THEN
        RAISE EXCEPTION 'request % is %; only requests not yet submitted can be cancelled', p_id, st
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE gdpr_requests SET status = 'cancelled', updated_at = now() WHERE id = p_id;
    INSERT INTO gdpr_request_log (request_id, from_status, to_status, detail, actor)
    VALUES (p_id, st, 'cancelled', 'cancelled by the DPO' || coalesce(': ' || p_reason, ''),
            coalesce(p_actor, session_user));
END $$;
REVOKE ALL ON FUNCTION gdpr_cancel_request(bigint, text, text) FROM PUBLIC;
"""
)

DOWNGRADE = r"""
DROP FUNCTION gdpr_cancel_request(bigint, text, text);
ALTER FUNCTION gdpr_requests_log_insert() SECURITY INVOKER RESET search_path;
ALTER TABLE gdpr_requests DROP CONSTRAINT external_ref_not_blank;
ALTER TABLE gdpr_requests DROP CONSTRAINT purged_request_stays_finished;
ALTER TABLE gdpr_requests DROP COLUMN record_id_sha256, DROP COLUMN purged_at;
DROP FUNCTION gdpr_purge_chain(text, timestamptz, integer);
DROP TRIGGER gdpr_request_log_no_update ON gdpr_request_log;
DROP TRIGGER gdpr_request_log_no_truncate ON gdpr_request_log;
DROP TRIGGER gdpr_request_log_delete_only_purged ON gdpr_request_log;
DROP TRIGGER gdpr_request_log_chain ON gdpr_request_log;
DROP TRIGGER audit_events_no_update ON audit_events;
DROP TRIGGER audit_events_no_truncate ON audit_events;
DROP TRIGGER audit_events_delete_only_purged ON audit_events;
DROP TRIGGER audit_events_chain ON audit_events;
DROP FUNCTION gdpr_request_log_chain();
DROP FUNCTION audit_events_chain();
DROP FUNCTION integrity_delete_only_purged();
ALTER TABLE gdpr_request_log DROP COLUMN chain_seq, DROP COLUMN row_hash;
ALTER TABLE audit_events DROP COLUMN chain_seq, DROP COLUMN row_hash;
DROP TABLE integrity_checkpoints;
DROP TABLE integrity_chains;
DROP FUNCTION integrity_chains_guard();
DROP FUNCTION integrity_refuse_change();
"""


def upgrade() -> None:
    run_script(op.get_bind(), UPGRADE)


def downgrade() -> None:
    run_script(op.get_bind(), DOWNGRADE)
