"""``gdpr-daemon demo``: the whole main job on an embedded Postgres and the simulator.

Nothing to set up: it starts both, applies the migrations, enqueues a realistic batch
(some requests rejected or failing on purpose), runs the daemon until the queue is
drained, prints what happened, and cleans up.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from gdpr_daemon import render
from gdpr_daemon.config import Settings, load_settings
from gdpr_daemon.db import migrate
from gdpr_daemon.db.deadlines import extend_deadline
from gdpr_daemon.db.intake_settings import write_intake_settings
from gdpr_daemon.db.requests import (
    NewRequest,
    RequestError,
    approve_requests,
    confirmed_count,
    get_request,
    insert_requests,
    list_requests,
    status_counts,
)
from gdpr_daemon.embedded import EmbeddedPostgres, EmbeddedPostgresError
from gdpr_daemon.runtime import Runtime, open_runtime
from gdpr_daemon.simulator import FaultConfig, Simulator, SimulatorConfig

FAILING_SERVICE = 1005  # the simulator answers 500 to every GDPR call for it
UNKNOWN_SERVICE = 4711  # not one of the account's services
PROVED_SERVICE = 1001  # the forget whose erasure the demo proves in a later backup
TABLES = ("Contact", "Lead", "Case", "Account", "Opportunity")
FIELDS = ("Email", "Phone", "MailingStreet", "LastName")
NAMES = ("Ada", "Grace", "Linus", "Margaret", "Alan", "Barbara", "Ken", "Edsger", "Frances", "Tim")


def _say(msg: str) -> None:
    print(msg, flush=True)


def demo_batch(n: int, rng: random.Random) -> list[NewRequest]:
    """A batch a DPO might enter in a week, with a few that will go wrong on purpose."""
    batch: list[NewRequest] = []
    normal_services = (1001, 1002, 1003, 1004, 1006)
    for i in range(n):
        service = normal_services[i % len(normal_services)]
        table = TABLES[i % len(TABLES)]
        suffix = "".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", k=8))
        record_id = "00" + secrets.choice("3Q5") + "5g00000" + suffix
        ref = f"DSR-2026-{1000 + i}"
        if i % 3 == 2:
            field = FIELDS[i % len(FIELDS)]
            email = f"{NAMES[i % len(NAMES)].lower()}.{rng.randint(10, 99)}@example.org"
            value = email if field == "Email" else f"demo value {i}"
            batch.append(
                NewRequest(
                    "rectify",
                    service,
                    table,
                    record_id,
                    field=field,
                    value=value,
                    comment=f"Art. 16 request, case {ref}",
                    external_ref=ref,
                    requested_by="demo-dpo",
                )
            )
        else:
            batch.append(
                NewRequest(
                    "forget",
                    service,
                    table,
                    record_id,
                    comment=f"Art. 17 request, case {ref}",
                    external_ref=ref,
                    requested_by="demo-dpo",
                )
            )
    # What going wrong looks like:
    batch.append(
        NewRequest(
            "forget",
            UNKNOWN_SERVICE,
            "Contact",
            "0035g00000TYPO01",
            external_ref="DSR-2026-wrong-service",
            comment="service id mistyped by the DPO",
            requested_by="demo-dpo",
        )
    )
    batch.append(
        NewRequest(
            "forget",
            1001,
            "Contact Person",
            "0035g00000BADTBL",
            external_ref="DSR-2026-bad-table",
            comment="object label instead of API name",
            requested_by="demo-dpo",
        )
    )
    batch += [
        NewRequest(
            "forget",
            FAILING_SERVICE,
            "Contact",
            f"0035g00000FAIL{k:02d}",
            external_ref=f"DSR-2026-outage-{k}",
            comment="this service's API is down in the demo",
            requested_by="demo-dpo",
        )
        for k in range(2)
    ]
    return batch


async def run_demo(*, requests: int = 24, keep: bool = False) -> int:
    from gdpr_daemon import logs

    logs.configure("console", "error", stream=sys.stderr)
    started = time.monotonic()
    _say("gdpr-daemon demo: everything below runs on this machine, nothing leaves it.\n")
    server = EmbeddedPostgres()
    try:
        _say("1. starting an embedded Postgres (unix socket only) ...")
        url = await asyncio.to_thread(server.start)
    except EmbeddedPostgresError as exc:
        print(f"gdpr-daemon demo: {exc}", file=sys.stderr)
        return 1
    password = secrets.token_urlsafe(16)
    try:
        async with _simulator(password).serve(host="127.0.0.1", port=0) as sim_url:
            _say(
                f"2. OwnBackup simulator listening at {sim_url} (6 services; service {FAILING_SERVICE} "
                "answers 500 to every GDPR call, 8% of calls get 429)"
            )
            async with open_runtime(_settings(url, sim_url, password), api=True, pool_size=5) as rt:
                await _run_steps(rt, requests, keep, url)
    finally:
        if not keep:
            server.stop()
    ending = "the embedded Postgres is still running (--keep)." if keep else "embedded Postgres stopped and removed."
    _say(f"\ndone in {time.monotonic() - started:.1f} s; {ending}")
    return 0


def _simulator(password: str) -> Simulator:
    return Simulator(
        SimulatorConfig(email="dpo@example.com", password=password, services=6, seed=2026, backup_seconds=1.0),
        faults=FaultConfig(
            failing_services=frozenset({FAILING_SERVICE}),
            rate_429=0.08,
            retry_after_s=0,
            latency_ms=15,
            latency_jitter_ms=25,
            seed=2026,
        ),
    )


def _settings(url: str, sim_url: str, password: str) -> Settings:
    return load_settings(
        None,
        environ={},
        database_url=url,
        ownbackup_url=sim_url,
        ownbackup_email="dpo@example.com",
        ownbackup_password=password,
        intake_require_approval=True,
        queue_max_attempts=3,
        queue_backoff_base_seconds=0.3,
        queue_backoff_max_seconds=1.0,
        queue_poll_interval_seconds=0.5,
        instance_name="demo-daemon",
        log_format="console",
        log_level="error",
    )


async def _run_steps(rt: Runtime, requests: int, keep: bool, url: str) -> None:
    """Steps 3 to 9, on the demo's runtime."""
    engine = rt.engine
    _before, after = await migrate.upgrade(engine)
    _say(f"3. schema migrated to revision {after}")
    batch = demo_batch(requests, random.Random(2026))
    async with engine.begin() as conn:
        await insert_requests(conn, batch)
        (proved_id,) = await insert_requests(conn, [erasure_to_prove()])
    batch.append(erasure_to_prove())
    _say(f"4. {len(batch)} requests enqueued in gdpr_requests (like a DPO's INSERTs)")
    tools = await _dpo_tools(engine)
    await _drain(rt)
    rows = await list_requests(engine, limit=10_000)
    rows.reverse()
    await _show_outcome(engine, rows)
    await _show_tools(engine, tools)
    await _prove_erasure(rt, proved_id)
    await _show_status(engine, rt.settings.events_unconfirmed_after_hours)
    _summary_hint(rows, keep, url)


async def _drain(rt: Runtime) -> None:
    """Step 5: the daemon runs until the queue is drained, then pulls the account events once more."""
    from gdpr_daemon.daemon import Daemon

    daemon = Daemon(rt)
    stop = asyncio.Event()
    task = asyncio.create_task(daemon.run(stop), name="demo-daemon")
    _say("5. daemon running; draining the queue ...")
    deadline = time.monotonic() + 120
    last = ""
    while time.monotonic() < deadline:
        counts = await status_counts(rt.engine)
        line = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
        if line != last:
            _say(f"   {line}")
            last = line
        if not counts.get("pending") and not counts.get("in_flight"):
            break
        await asyncio.sleep(0.3)
    if daemon.events_job is not None:  # the daemon's own scheduled pull, once more now
        pulled = await daemon.events_job.run()
        if pulled is not None:
            # Counted in the table: the daemon's scheduled pull may have confirmed some first.
            confirmed = await confirmed_count(rt.engine)
            _say(f"   account event history pulled: {pulled.stored} new events stored, "
                 f"{confirmed} requests confirmed by their OwnBackup event")  # fmt: skip
    stop.set()
    await task


REQUEST_COLUMNS = [
    ("id", "ID"), ("request_type", "TYPE"), ("service_id", "SERVICE"), ("table_name", "TABLE"),
    ("status", "STATUS"), ("ownbackup_request_id", "OWNBACKUP ID"), ("attempts", "TRIES"),
    ("external_ref", "CASE"), ("last_error", "ERROR"),
]  # fmt: skip
HISTORY_COLUMNS = [("at", "AT"), ("from_status", "FROM"), ("to_status", "TO"), ("actor", "BY"), ("detail", "DETAIL")]


async def _show_outcome(engine: Any, rows: list[dict[str, Any]]) -> None:
    """Step 6: every request's end state, and the history of one that failed."""
    _say("\n6. what happened:\n")
    print(render.table(rows, REQUEST_COLUMNS, max_width=110))
    counts = await status_counts(engine)
    _say("\n   " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    failed = next((r for r in rows if r["status"] == "failed"), None)
    if failed:
        _, history = await get_request(engine, failed["id"])
        _say(f"\n   the history of request {failed['id']} (gdpr_request_log), as auditors see it:")
        print(render.table(history, HISTORY_COLUMNS, max_width=110))


async def _dpo_tools(engine: Any) -> dict[str, Any]:
    """The DPO's everyday tools: a late request, an extended deadline, four eyes."""
    late = NewRequest(
        "forget",
        FAILING_SERVICE,
        "Contact",
        "0035g00000LATE01",
        external_ref="DSR-2026-late",
        comment="entered late; its service's API is down",
        requested_by="demo-dpo",
        received_at=datetime.now(UTC) - timedelta(days=40),
    )
    complex_case = NewRequest(
        "forget",
        1001,
        "Account",
        "0015g00000CMPLX1",
        external_ref="DSR-2026-complex",
        comment="many related records",
        requested_by="demo-dpo",
    )
    async with engine.begin() as conn:
        late_id, complex_id = await insert_requests(conn, [late, complex_case])
    extension = await extend_deadline(
        engine, complex_id, months=2, actor="demo-dpo", reason="complex request: related records in several orgs"
    )
    # Four eyes on: the next request waits for a second person.
    await write_intake_settings(engine, require_approval=True, holidays=None, authoritative=True)
    async with engine.begin() as conn:
        (approval_id,) = await insert_requests(
            conn,
            [
                NewRequest(
                    "forget",
                    1002,
                    "Lead",
                    "00Q5g00000EYES01",
                    external_ref="DSR-2026-four-eyes",
                    comment="entered with four eyes on",
                    requested_by="demo-dpo",
                )
            ],
        )
    try:
        await approve_requests(engine, [approval_id], actor="demo-dpo")
        refusal = "(not refused?)"
    except RequestError as exc:
        refusal = str(exc).splitlines()[0]
    await approve_requests(engine, [approval_id], actor="demo-second-dpo")
    _say(
        f"   DPO tools: request {complex_id}'s deadline extended to {extension.due_at:%Y-%m-%d}; request "
        f"{approval_id} entered with four eyes on and approved by a second person; request {late_id} "
        "entered 40 days late"
    )
    return {"late": late_id, "extended": complex_id, "approved": approval_id, "refusal": refusal}


async def _show_tools(engine: Any, tools: dict[str, Any]) -> None:
    _say("\n7. the DPO's everyday tools:\n")
    _, history = await get_request(engine, tools["approved"])
    _say(f"   four eyes (request {tools['approved']}): approving one's own request is refused:")
    _say(f"     {tools['refusal']}")
    for h in history:
        move = f"{h['from_status'] or '-':>17} -> {h['to_status']:<17}"
        _say(f"     {h['at']:%H:%M:%S}  {move} {h['actor']:<16} {h['detail']}")
    _, history = await get_request(engine, tools["extended"])
    ext = next(h for h in history if h["detail"].startswith("deadline extended"))
    _say(f"\n   deadline extension (request {tools['extended']}), kept in its history:\n     {ext['detail']}")
    overdue = await list_requests(engine, overdue=True)
    _say(
        f"\n   overdue: {len(overdue)} request(s) past their deadline and not submitted "
        "(`gdpr-daemon requests list --overdue`;\n   "
        "logged once a day, metric gdpr_daemon_requests_overdue):"
    )
    for r in overdue:
        _say(f"     request {r['id']}: {r['status']}, due {r['due_at']:%Y-%m-%d}, case {r['external_ref']}")


def erasure_to_prove() -> NewRequest:
    """A forget of a Contact record that the simulator's backups of service 1001 really hold."""
    from gdpr_daemon.simulator.csvdata import record_id

    return NewRequest("forget", PROVED_SERVICE, "Contact", record_id("Contact", PROVED_SERVICE, 7),
                      comment="Art. 17 request; erasure to be proved in the backups", external_ref="DSR-2026-proof",
                      requested_by="demo-dpo")  # fmt: skip


async def _prove_erasure(rt: Runtime, request_id: int) -> None:
    """`gdpr-daemon requests verify`: before a backup, then after one taken after the submission."""
    from gdpr_daemon.verify.batch import describe, verify_ids

    _say(f"\n8. proving the erasure in the backups themselves (`gdpr-daemon requests verify {request_id}`):\n")
    engine, client = rt.engine, rt.client
    (before,) = await verify_ids(engine, client, [request_id], actor="demo-dpo")
    _say(f"   right after submission:\n     {describe(before)}")
    previous = (await client.get_backup(PROVED_SERVICE, "last")).id
    await client.backup_now(PROVED_SERVICE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        last = await client.get_backup(PROVED_SERVICE, "last")
        if last.id != previous and last.completed_at is not None:
            break
        await asyncio.sleep(0.2)
    _say(f"   service {PROVED_SERVICE} backed up now (backup {last.id}); its Contact CSV is read as it streams in:")
    (after,) = await verify_ids(engine, client, [request_id], actor="demo-dpo")
    _say(f"     {describe(after)}")
    _, history = await get_request(engine, request_id)
    proof = next((h for h in reversed(history) if h["detail"].startswith(("verified: ", "still present"))), None)
    if proof is not None:
        _say(f"   kept in the request's history, for the auditor:\n     {proof['at']:%H:%M:%S}  {proof['actor']:<10} "
             f"{proof['detail']}")  # fmt: skip


async def _show_status(engine: Any, hours: float) -> None:
    from gdpr_daemon.commands.status import as_text
    from gdpr_daemon.db.stats import status_figures

    figures = await status_figures(engine, unconfirmed_after_hours=hours)
    _say("\n9. `gdpr-daemon status`, the view at a glance (what needs a person, what is late):\n")
    _say("\n".join("   " + line for line in as_text(figures, hours, datetime.now(UTC)).splitlines()))


def _summary_hint(rows: list[dict[str, Any]], keep: bool, url: str) -> None:
    rectified = [r for r in rows if r["request_type"] == "rectify" and r["status"] == "submitted"]
    if rectified:
        _say(
            f"\n   the {len(rectified)} submitted rectify values were erased from gdpr_requests; "
            "only their SHA-256 digests remain (value_sha256)."
        )
    if keep:
        _say(f"   explore it: psql '{url}'")
