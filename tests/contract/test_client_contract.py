"""Every public async method of OwnBackupClient against the simulator, every raw answer
validated against the shipped OpenAPI document: client, simulator and document agree.

The client is configured the way the daemon configures it (``Settings`` ->
``gdpr_daemon.runtime.client_config``), once with session login and once with OAuth bearer
tokens.  A recording subclass keeps each HTTP exchange as received, before the client
parses it, so the document is checked against the wire, not against the client's reading.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

from gdpr_daemon.config import load_settings
from gdpr_daemon.ownbackup import ClientError, NotFound, OwnBackupClient
from gdpr_daemon.ownbackup.openapi import load_spec, operations
from gdpr_daemon.ownbackup.transport import Answer
from gdpr_daemon.runtime import client_config
from gdpr_daemon.simulator import Simulator
from tests.helpers import SECRETS_SEEN, insert_forget, insert_rectify, pii

from .conftest import API_TOKEN, EMAIL, PASSWORD, AnswerValidator, contract_config

SPEC = load_spec()
OPERATIONS = {op.operation_id: op for op in operations(SPEC)}
# The vendor's token path: the simulator serves it on its own host, where tests point the token URL.
TOKEN_PATH = "/oauth2/aus4c3z3l8FqrbqDU4h7/v1/token"
# The operations only one kind of authentication calls.
AUTH_ONLY = {"session": {"login", "logout"}, "oauth": {"oauth_token"}}


@dataclass(frozen=True)
class Exchange:
    """One call as it went over the wire: the client's call name and the raw answer."""

    name: str
    method: str
    url: str
    status: int
    content_type: str
    body: bytes


class RecordingClient(OwnBackupClient):
    """The real client, keeping every raw answer (logins and token fetches included)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exchanges: list[Exchange] = []

    async def _send(self, name: str, method: str, url: str, **kwargs: Any) -> Answer:
        answer = await super()._send(name, method, url, **kwargs)
        self.exchanges.append(Exchange(name, method, url, answer.status, answer.content_type, answer.body))
        return answer


def public_async_methods() -> set[str]:
    return {
        name
        for name, member in inspect.getmembers(OwnBackupClient, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }


def template_regex(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    return re.compile("".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + r"\Z")


def settings_for_sim(url: str, auth: str) -> Any:
    return load_settings(
        None,
        environ={},
        ownbackup_url=url,
        ownbackup_auth=auth,
        ownbackup_email=EMAIL,
        ownbackup_password=PASSWORD,
        ownbackup_api_token=API_TOKEN,
        ownbackup_token_url=url + TOKEN_PATH,
        ownbackup_timeout_seconds=5.0,
    )


@pytest.fixture
async def served() -> AsyncIterator[tuple[Simulator, str]]:
    """A fresh simulator of this test's own, on loopback."""
    sim = Simulator(contract_config())
    SECRETS_SEEN.add(API_TOKEN)
    async with sim.serve(host="127.0.0.1", port=0) as url:
        yield sim, url
    SECRETS_SEEN.update(sim.state.credentials.issued)


async def exercise_every_method(client: RecordingClient) -> set[str]:
    """Call each public async method at least once, happy paths and two refusals; the names called."""
    called: set[str] = set()

    def call(name: str) -> Callable[..., Awaitable[Any]]:
        called.add(name)
        method: Callable[..., Awaitable[Any]] = getattr(client, name)
        return method

    await call("open")()
    try:
        await call("authenticate")()
        services = await call("list_services")()
        service = await call("get_service")(services[0].id)
        with pytest.raises(NotFound):
            await call("get_service")(12415)
        await call("backup_now")(service.id)
        await call("backup_specific_objects_now")(service.id, ["Account", "Contact"])
        backups = await call("list_backups")(service.id)
        assert [b.num_sections for b in backups[-2:]] == [8, 2]
        await call("get_backup")(service.id, "last")
        await call("get_backup")(service.id, backups[0].id)
        objects = await call("backup_objects")(service.id, "last")
        csv_text = await call("download")(objects[0].download_link)
        assert csv_text.startswith(b"Id,") and objects[0].links["removed"] == objects[0].download_removed_link
        job_id = await call("export")(service.id, "last", "sql", sql_dialect="postgresql", objects=["Contact"])
        await call("export")(service.id, backups[0].id, "csv", include_attachments=True)
        await call("export_to_endpoint")(service.id, "last", 4, ["Contact"])
        await call("list_jobs")()
        await call("get_job")(job_id)
        forget = await call("gdpr_forget")(service.id, record_id="0031t00000AbCdEAAA", table_name="Contact")
        await call("gdpr_forget")(service.id, record_id="0031t00000AbCdFAAA", table_name="Lead", comment="case 17")
        rectify = await call("gdpr_rectify")(
            service.id, record_id="0031t00000AbCdEAAA", table_name="Contact", field="Email", value="", comment="c"
        )
        assert rectify.id > forget.id
        with pytest.raises(ClientError) as refused:
            await call("gdpr_forget")(service.id, record_id="003x", table_name="Not an API name")
        assert refused.value.status == 400
        first_page = await call("events")()
        assert len(first_page) == 1000
        rest = await call("events")(from_id=1000)
        assert rest and all(isinstance(e, dict) and e["event_id"] > 1000 for e in rest)
        templates = await call("seeding_templates")()
        automations = await call("automations")(1003)
        seed = await call("start_seed")(
            templates[0].id,
            destination=1003,
            seeding_method="upsert",
            disable_automations=True,
            automations_to_disable={"ApexTrigger": automations["ApexTrigger"][:1]},
            disable_validation_rules=True,
            reindex=False,
            backup_id="last",
            service_id=templates[0].raw["source_service_id"],
        )
        assert (await call("seed_info")(seed.seed_id)).id == seed.id
        job_id = await call("anonymize")(templates[0].id, destination_service_id=1003, backup_id="last")
        assert (await call("anonymize_info")(job_id)).status == "COMPLETED"
    finally:
        await call("close")()
    return called


def check_exchanges(exchanges: list[Exchange], answers: AnswerValidator) -> tuple[set[str], list[str]]:
    """The operations exercised, and every way an exchange strays from the document."""
    problems: list[str] = []
    seen: set[str] = set()
    for ex in exchanges:
        op = OPERATIONS.get(ex.name)
        if op is None:
            problems.append(f"{ex.name}: the document has no operation with this operationId")
            continue
        seen.add(ex.name)
        path = urlsplit(ex.url).path
        if ex.method != op.method or not template_regex(op.path).match(path):
            problems.append(f"{ex.name}: client sent {ex.method} {path}, document says {op.method} {op.path}")
        body: Any = ex.body.decode("utf-8")
        if ex.content_type == "application/json":
            body = json.loads(body)
        try:
            found = answers.problems(op.method, op.path, ex.status, body, ex.content_type)
        except KeyError as exc:
            found = [str(exc)]
        problems.extend(f"{ex.name} {ex.status}: {p}" for p in found)
    return seen, problems


@pytest.mark.parametrize("auth", ["session", "oauth"])
async def test_every_client_method_agrees_with_simulator_and_document(
    auth: str, served: tuple[Simulator, str], answers: AnswerValidator
) -> None:
    """Each public async client method, configured from Settings, gets answers that conform to the document."""
    sim, url = served
    client = RecordingClient(client_config(settings_for_sim(url, auth)))
    called = await exercise_every_method(client)

    assert called == public_async_methods(), "a public client method lacks contract coverage"
    seen, problems = check_exchanges(client.exchanges, answers)
    assert problems == []
    other = "oauth" if auth == "session" else "session"
    assert seen == set(OPERATIONS) - AUTH_ONLY[other], "the document and the client disagree on the calls"
    assert {ex.status for ex in client.exchanges} == {200, 400, 404}
    if auth == "oauth":
        assert (sim.stats.tokens_issued, sim.stats.logins) == (1, 0)
        assert sim.state.tokens and not sim.state.sessions
    else:
        assert (sim.stats.tokens_issued, sim.stats.logins) == (0, 1)
        assert not sim.state.sessions, "closing the client logged the session out"


async def test_oauth_settings_drive_the_daemon_end_to_end(daemon_for, sim: Simulator, settings_for, engine, pg) -> None:
    """With ownbackup_auth="oauth" the daemon fetches a bearer token once and submits forget and rectify requests."""
    ids = await insert_forget(pg, 1001, 3) + [await insert_rectify(pg, 1002, pii("contract"))]
    defaults = settings_for(ownbackup_auth="oauth", ownbackup_api_token="simulator-api-token")
    assert (client_config(defaults).auth.token_url, client_config(defaults).auth.client_id) == (
        "https://auth.owndata.com/oauth2/aus4c3z3l8FqrbqDU4h7/v1/token", "0oa4c413eq8wwcEzP4h7"
    ), "the vendor's token URL and public client id are the defaults"  # fmt: skip
    # The same path on the simulator's host: the real flow, with the vendor's client id.
    settings = settings_for(ownbackup_auth="oauth", ownbackup_api_token="simulator-api-token",
                            ownbackup_token_url=sim.url + TOKEN_PATH)  # fmt: skip
    assert client_config(settings).auth.client_id == "0oa4c413eq8wwcEzP4h7"

    report = await (await daemon_for(settings)).run_once()

    assert report.submitted == len(ids) and report.failed == report.rejected == 0
    assert (sim.stats.tokens_issued, sim.stats.logins) == (1, 0)
    assert sim.stats.calls[f"POST {TOKEN_PATH}"] == 1
    assert [c.client_id for c in sim.state.tokens.values()] == ["0oa4c413eq8wwcEzP4h7"]
    assert len(sim.state.gdpr_calls) == len(ids)
    rows = await pg.fetch("SELECT status, ownbackup_request_id FROM gdpr_requests ORDER BY id")
    assert {r["status"] for r in rows} == {"submitted"}
    assert sorted(r["ownbackup_request_id"] for r in rows) == sorted(c.id for c in sim.state.gdpr_calls)


async def test_gdpr_answer_with_job_id_conforms(answers: AnswerValidator) -> None:
    """An account answering GDPR calls with {"job_id": N} matches the document and the client reads N."""
    sim = Simulator(contract_config(gdpr_answer_key="job_id"))
    async with sim.serve(host="127.0.0.1", port=0) as url:
        client = RecordingClient(client_config(settings_for_sim(url, "session")))
        async with client:
            receipt = await client.gdpr_forget(1001, record_id="0031t00000AbCdEAAA", table_name="Contact")
    SECRETS_SEEN.update(sim.state.credentials.issued)
    assert receipt.id == sim.state.gdpr_calls[0].id
    forget = [ex for ex in client.exchanges if ex.name == "gdpr_forget"]
    assert [json.loads(ex.body) for ex in forget] == [{"job_id": receipt.id}]
    assert check_exchanges(client.exchanges, answers)[1] == []
