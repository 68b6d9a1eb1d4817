"""The OwnBackup API handlers: parse a request, call the account state, answer JSON.

Authentication, faults, error translation and statistics happen in the middleware of
:mod:`gdpr_daemon.simulator.app`; a handler only sees calls that passed it, and raises
:class:`~gdpr_daemon.simulator.state.ApiError` for what the API refuses.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from gdpr_daemon.ownbackup.auth import VENDOR_TOKEN_URL
from gdpr_daemon.simulator.config import ApiError, as_id
from gdpr_daemon.simulator.csvdata import CSV_KINDS, csv_chunks
from gdpr_daemon.simulator.params import SIM_KEY, Params, bearer_of
from gdpr_daemon.simulator.state import SimulatorState

API = "/api/v1"
SERVICE = API + "/services/{service_id}"
BACKUP = SERVICE + "/backups/{backup_id}"
#: The vendor's token path (on its own host there; on the simulator's host here).
TOKEN_PATH = urlsplit(VENDOR_TOKEN_URL).path

# Routes that need no session.
PUBLIC_ROUTES = frozenset({"login"})
GDPR_ROUTES = frozenset({"gdpr_forget", "gdpr_rectify"})


def _state(request: web.Request) -> SimulatorState:
    return request.app[SIM_KEY].state


def _now(request: web.Request) -> float:
    return _state(request).now()


async def login(request: web.Request) -> web.Response:
    params = await Params.read(request)
    sim = request.app[SIM_KEY]
    session_id = sim.state.login(params.text("email"), params.text("password"), request.remote)
    sim.stats.logins += 1
    return web.json_response({"session_id": session_id})


async def logout(request: web.Request) -> web.Response:
    _state(request).logout(request.headers.get("X-SESSION-ID"), bearer_of(request))
    return web.json_response({})


async def oauth_token(request: web.Request) -> web.Response:
    params = await Params.read(request)
    sim = request.app[SIM_KEY]
    answer = sim.state.issue_token(
        params.text("grant_type"),
        params.text("refresh_token"),
        params.text("scope"),
        params.text("client_id"),
    )
    sim.stats.tokens_issued += 1
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


async def list_services(request: web.Request) -> web.Response:
    state = _state(request)
    return web.json_response([state.service(s.id).to_json() for s in state.services])


async def get_service(request: web.Request) -> web.Response:
    return web.json_response(_state(request).service(request.match_info["service_id"]).to_json())


async def backup_now(request: web.Request) -> web.Response:
    """Everything, now: the call has no fields."""
    params = await Params.read(request)
    if params.texts():
        raise ApiError(
            400,
            f"backup_now takes no fields (got {', '.join(sorted(params.texts()))}); to back up "
            "only some objects call backup_specific_objects_now with list_of_objects",
        )
    _state(request).backup_now(request.match_info["service_id"], None)
    return web.json_response({})


async def backup_specific_objects_now(request: web.Request) -> web.Response:
    params = await Params.read(request)
    objects = params.list("list_of_objects")
    if not objects:
        raise ApiError(400, "list_of_objects is required: the objects to back up")
    _state(request).backup_now(request.match_info["service_id"], objects)
    return web.json_response({})


async def list_backups(request: web.Request) -> web.Response:
    now = _now(request)
    backups = _state(request).backups_of(request.match_info["service_id"])
    return web.json_response([b.to_json(now) for b in backups])


async def get_backup(request: web.Request) -> web.Response:
    info = request.match_info
    backup = _state(request).backup(info["service_id"], info["backup_id"])
    return web.json_response(backup.to_json(_now(request)))


async def backup_objects(request: web.Request) -> web.Response:
    info = request.match_info
    backup = _state(request).backup(info["service_id"], info["backup_id"])
    # Absolute links on the simulator's own host, as the API's links are on its own.
    base = f"{request.url.origin()}{API}/services/{backup.service_id}/backups/{backup.id}/objects"
    return web.json_response(backup.sections_json(lambda name, kind: f"{base}/{name}/{kind}.csv"))


async def object_csv(request: web.Request) -> web.StreamResponse:
    """One CSV behind a download link, generated while it is sent (any size, flat memory).

    Forgotten records are left out and rectified fields carry their new value, as the GDPR
    calls so far reach this backup (see :class:`~gdpr_daemon.simulator.csvdata.Erasures`).
    """
    info = request.match_info
    state = _state(request)
    backup = state.backup(info["service_id"], info["backup_id"])
    name, kind = info["object_name"], info["kind"]
    if name not in backup.objects:
        raise ApiError(404, f"object {name} not found in backup {backup.id}")
    if kind not in CSV_KINDS:
        raise ApiError(404, f"no {kind} data: expected one of {', '.join(CSV_KINDS)}")
    changes = state.erasures.for_csv(backup, name, state.now())
    filename = f"{backup.service_id}_{backup.id}_{name}_{kind}.csv"
    response = web.StreamResponse(headers={"Content-Disposition": f'attachment; filename="{filename}"'})
    response.content_type = "text/csv"
    response.charset = "utf-8"
    await response.prepare(request)
    for chunk in csv_chunks(backup.service_id, backup, name, kind, changes):
        await response.write(chunk)
    await response.write_eof()
    return response


async def export(request: web.Request) -> web.Response:
    params = await Params.read(request)
    info = request.match_info
    job = _state(request).export(
        info["service_id"],
        info["backup_id"],
        export_format=params.text("export_format"),
        sql_dialect=params.text("sql_dialect"),
        include_attachments=params.bool("include_attachments"),
        objects=params.list("objects"),
    )
    return web.json_response({"job_id": job.id})


async def export_to_endpoint(request: web.Request) -> web.Response:
    params = await Params.read(request)
    info = request.match_info
    job = _state(request).export_to_endpoint(
        info["service_id"],
        info["backup_id"],
        endpoint_id=params.text("endpoint_id"),
        objects=params.list("objects"),
    )
    return web.json_response({"job_id": job.id})


async def _gdpr(request: web.Request, kind: str) -> web.Response:
    sim = request.app[SIM_KEY]
    service_id = request.match_info["service_id"]
    sim.state.service(service_id)  # 404 before looking at the body
    params = await Params.read(request)
    call = sim.state.gdpr(
        kind,
        service_id,
        record_id=params.text("record_id"),
        table_name=params.text("table_name"),
        field=params.text("field"),
        value=params.text("value"),
        comment=params.text("comment"),
    )
    return web.json_response({sim.config.gdpr_answer_key: call.id})


async def gdpr_forget(request: web.Request) -> web.Response:
    return await _gdpr(request, "forget")


async def gdpr_rectify(request: web.Request) -> web.Response:
    return await _gdpr(request, "rectify")


async def list_jobs(request: web.Request) -> web.Response:
    state, now = _state(request), _now(request)
    return web.json_response([job.to_json(now) for _, job in sorted(state.jobs.items())])


async def get_job(request: web.Request) -> web.Response:
    job = _state(request).job(request.match_info["job_id"])
    return web.json_response(job.to_json(_now(request)))


async def events(request: web.Request) -> web.Response:
    raw = request.query.get("from")
    after = 0
    if raw is not None:
        parsed = as_id(raw)
        if parsed is None:
            raise ApiError(400, f"from must be a non-negative integer event_id, not {raw!r}")
        after = parsed
    return web.json_response(_state(request).events_page(after))


async def list_templates(request: web.Request) -> web.Response:
    state = _state(request)
    return web.json_response([t.to_json() for _, t in sorted(state.templates.items())])


async def get_seed(request: web.Request) -> web.Response:
    seed = _state(request).seed(request.match_info["seed_id"])
    return web.json_response(seed.to_json(_now(request)))


async def start_seed(request: web.Request) -> web.Response:
    params = await Params.read(request)
    state = _state(request)
    # Accepted as the clients send them; the simulated seed does not change with them.
    params.bool("disable_validation_rules")
    params.bool("reindex")
    seed = state.start_seed(
        request.match_info["template_id"],
        destination=params.text("destination"),
        seeding_method=params.text("seeding_method"),
        disable_automations=params.bool("disable_automations"),
        automations_to_disable=params.automations("automations_to_disable"),
        backup_id=params.text("backup_id"),
        service_id=params.text("service_id"),
    )
    return web.json_response(seed.to_json(state.now()))


async def anonymize(request: web.Request) -> web.Response:
    params = await Params.read(request)
    job = _state(request).anonymize(
        request.match_info["template_id"],
        destination_service_id=params.text("destination_service_id"),
        disable_automations=params.bool("disable_automations"),
        automations_to_disable=params.automations("automations_to_disable"),
        backup_id=params.text("backup_id"),
    )
    return web.json_response({"job_id": job.id})


async def anonymize_info(request: web.Request) -> web.Response:
    job = _state(request).anonymize_job(request.match_info["anonymize_id"])
    return web.json_response(job.to_json(_now(request)))


async def automations(request: web.Request) -> web.Response:
    return web.json_response(_state(request).service_automations(request.match_info["service_id"]))


def add_api_routes(app: web.Application) -> None:
    """Register every API route under its name (the names the middleware knows)."""
    r = app.router
    r.add_post("/api/auth/v1/login", login, name="login")
    r.add_post("/api/auth/v1/logout", logout, name="logout")
    r.add_post(TOKEN_PATH, oauth_token, name="oauth_token")
    r.add_get(API + "/services", list_services, name="services")
    r.add_get(SERVICE, get_service, name="service")
    r.add_post(SERVICE + "/backup_now", backup_now, name="backup_now")
    r.add_post(
        SERVICE + "/backup_specific_objects_now",
        backup_specific_objects_now,
        name="backup_specific_objects_now",
    )
    r.add_get(SERVICE + "/backups", list_backups, name="backups")
    r.add_get(BACKUP, get_backup, name="backup")
    r.add_get(BACKUP + "/objects", backup_objects, name="backup_objects")
    r.add_get(BACKUP + "/objects/{object_name}/{kind}.csv", object_csv, name="object_csv")
    r.add_post(BACKUP + "/export", export, name="export")
    r.add_post(BACKUP + "/export_to_endpoint", export_to_endpoint, name="export_to_endpoint")
    r.add_post(SERVICE + "/gdpr/forget", gdpr_forget, name="gdpr_forget")
    r.add_post(SERVICE + "/gdpr/rectify", gdpr_rectify, name="gdpr_rectify")
    r.add_get(SERVICE + "/automations", automations, name="automations")
    r.add_get(API + "/jobs", list_jobs, name="jobs")
    r.add_get(API + "/jobs/{job_id}", get_job, name="job")
    r.add_get(API + "/events", events, name="events")
    r.add_get(API + "/seeding/templates", list_templates, name="templates")
    r.add_get(API + "/seeding/seed/{seed_id}", get_seed, name="seed")
    r.add_post(API + "/seeding/templates/{template_id}/seed", start_seed, name="start_seed")
    r.add_post(API + "/seeding/templates/{template_id}/anonymize", anonymize, name="anonymize")
    r.add_get(API + "/seeding/anonymize/{anonymize_id}", anonymize_info, name="anonymize_info")
