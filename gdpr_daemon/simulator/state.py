"""The in-memory OwnBackup account: what the simulator's API reads and changes.

:class:`SimulatorState` holds services, backups, jobs, seeding templates, seeds,
sessions, access tokens, the event history and every accepted GDPR call.  Its methods
carry out the API's operations and check their input; they raise :class:`ApiError`
(HTTP status and a sentence) for anything the API refuses, so the HTTP layer only
translates.  The state knows no HTTP and can be driven in-process.

Secrets (passwords, session ids, tokens) and rectify values are never logged; a rectify
value is kept only as its sha256 digest.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from gdpr_daemon.simulator import account as acc
from gdpr_daemon.simulator.account import Backup, Job, Seed, SeedingTemplate, Service
from gdpr_daemon.simulator.auth import Credential, Credentials
from gdpr_daemon.simulator.config import (
    EXPORT_FORMATS,
    FIRST_SERVICE_ID,
    SEEDING_METHODS,
    SQL_DIALECTS,
    ApiError,
    GdprCall,
    SimulatorConfig,
    as_id,
    checked_api_name,
    checked_enum,
    checked_text,
)
from gdpr_daemon.simulator.csvdata import Erasures
from gdpr_daemon.simulator.events import EventLog
from gdpr_daemon.simulator.faults import FaultConfig

ACCOUNT_USER_ID = 51

#: automations_to_disable as given: by kind, a list of names, or nothing.
Automations = Mapping[str, Sequence[str]] | Sequence[str] | None

__all__ = [
    "FIRST_SERVICE_ID",
    "ApiError",
    "GdprCall",
    "SimulatorConfig",
    "SimulatorState",
]


class SimulatorState:
    """The account.  ``clock`` gives the current time as epoch seconds."""

    def __init__(self, config: SimulatorConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.gdpr_calls: list[GdprCall] = []
        self.reset()

    def now(self) -> float:
        return self.clock()

    # -- building -----------------------------------------------------------------

    def reset(self) -> None:
        """Rebuild the default account from the config, as it was at start."""
        cfg = self.config
        now = self.now()
        rng = random.Random(cfg.seed)  # noqa: S311 - simulated data, not secrets
        self.services: list[Service] = acc.build_services(cfg.services, FIRST_SERVICE_ID, cfg.seed)
        self._by_id = {s.id: s for s in self.services}
        self.backups: dict[int, list[Backup]] = {}
        self.jobs: dict[int, Job] = {}
        self.seeds: dict[int, Seed] = {}
        self.credentials = Credentials(cfg, self.clock)
        self.gdpr_calls.clear()
        # What the GDPR calls change in the backups' CSV files (rectify values live only there).
        self.erasures = Erasures(cfg.erase_old_backups_after_seconds)
        self._next = {"backup": 58_000, "job": 700, "seed": 300, "gdpr": 0}
        self.automations = {s.id: acc.build_automations(s, cfg.seed) for s in self.services}
        self.events = EventLog(
            synthetic=cfg.synthetic_events,
            start_time=now,
            service_ids=[s.id for s in self.services],
            date_format=cfg.date_format,
            seed=cfg.seed,
        )
        for service in self.services:
            self._build_history(service, rng, now)
        self.templates = {
            index: SeedingTemplate(
                index, name, source, objects, records, now - 86_400 * (40 - index)
            )
            for index, (name, source, objects, records) in enumerate(
                acc.template_specs(self.services), start=1
            )
        }

    def _new_id(self, kind: str) -> int:
        self._next[kind] += 1
        return self._next[kind]

    def _objects_of(self, service: Service) -> tuple[str, ...]:
        count = {"production": 8, "full_sandbox": 8, "partial_sandbox": 5}.get(service.org_type, 3)
        return acc.OBJECT_NAMES[:count]

    def _scale(self, service: Service) -> int:
        return {"production": 10, "full_sandbox": 8, "partial_sandbox": 2}.get(service.org_type, 1)

    def _build_history(self, service: Service, rng: random.Random, now: float) -> None:
        count = 1 if service.archived else (2 if not service.enabled else 3)
        newest = now - 3_600 * (3 + rng.random() * 6)
        if service.archived:
            newest -= 86_400 * 400
        elif not service.enabled:
            newest -= 86_400 * 30
        backups = []
        for age in range(count - 1, -1, -1):
            objects = acc.object_counts(rng, self._objects_of(service), self._scale(service))
            started = newest - age * 86_400
            backups.append(
                Backup(self._new_id("backup"), service.id, started, 1_200.0, "scheduled", objects)
            )
        self.backups[service.id] = backups
        self._refresh(service)

    def _refresh(self, service: Service) -> None:
        """Bring the service's backup summary up to its newest completed backup."""
        now = self.now()
        done = [b for b in self.backups.get(service.id, ()) if b.completed(now)]
        if done:
            latest = done[-1]
            service.last_backup = latest.started_at + latest.duration_s
            service.num_items = latest.totals()["total_items"]
            service.total_size = latest.total_size()

    # -- authentication -----------------------------------------------------------

    @property
    def sessions(self) -> dict[str, Credential]:
        return self.credentials.sessions

    @property
    def tokens(self) -> dict[str, Credential]:
        return self.credentials.tokens

    def login(self, email: str | None, password: str | None, ip_address: str | None) -> str:
        """Open a session; the new session id.  Wrong credentials: 401."""
        session_id = self.credentials.login(email, password)
        if self.config.login_events:
            self._event("user.login", None, {"method": "password"}, ip_address, source="API")
        return session_id

    def issue_token(
        self,
        grant_type: str | None,
        refresh_token: str | None,
        scope: str | None,
        client_id: str | None,
    ) -> dict[str, Any]:
        """Exchange an API token (as OAuth refresh token) for a bearer access token."""
        return self.credentials.issue_token(grant_type, refresh_token, scope, client_id)

    def authenticate(
        self, session_id: str | None, bearer: str | None, faults: FaultConfig
    ) -> Credential:
        """The live credential of a call, counted; 401 when missing, unknown or expired."""
        return self.credentials.authenticate(session_id, bearer, faults)

    def logout(self, session_id: str | None, bearer: str | None) -> None:
        self.credentials.logout(session_id, bearer)

    # -- services, backups, automations -------------------------------------------

    def service(self, service_id: Any) -> Service:
        """The service, or 404 in the vendor's words."""
        service = self._by_id.get(as_id(service_id) or 0)
        if service is None:
            raise ApiError(404, f"service_id {service_id} not found")
        self._refresh(service)
        return service

    def backups_of(self, service_id: Any) -> list[Backup]:
        return list(self.backups[self.service(service_id).id])

    def backup(self, service_id: Any, backup_ref: str) -> Backup:
        """A backup by id or ``last`` (the newest)."""
        backups = self.backups_of(service_id)
        if backup_ref == "last":
            if not backups:
                raise ApiError(404, f"service_id {service_id} has no backups")
            return backups[-1]
        for backup in backups:
            if str(backup.id) == backup_ref:
                return backup
        raise ApiError(404, f"backup_id {backup_ref} not found for service_id {service_id}")

    def backup_now(self, service_id: Any, objects: list[str] | None) -> Backup:
        """Start a manual backup of some or all objects; it completes after a while."""
        service = self.service(service_id)
        if service.archived:
            raise ApiError(400, f"service_id {service.id} is archived and cannot be backed up")
        if not service.enabled:
            raise ApiError(400, f"service_id {service.id} is disabled; enable it to back it up")
        available = self._objects_of(service)
        chosen = tuple(objects) if objects else available
        unknown = [o for o in chosen if o not in available]
        if unknown:
            raise ApiError(400, f"unknown object(s) in list_of_objects: {', '.join(unknown)}")
        rng = random.Random(self.config.seed * 1_000_003 + self._next["backup"])  # noqa: S311 - simulated data, not secrets
        counts = acc.object_counts(rng, chosen, self._scale(service))
        if self.config.backup_now_rows is not None:
            rows = self.config.backup_now_rows
            counts = {o: {**c, "total_items": rows, "added_items": min(c["added_items"], rows),
                          "changed_items": min(c["changed_items"], rows)} for o, c in counts.items()}  # fmt: skip
        backup = Backup(
            self._new_id("backup"),
            service.id,
            self.now(),
            self.config.backup_seconds,
            "manual",
            counts,
        )
        self.backups[service.id].append(backup)
        params = {"backup_id": backup.id, "trigger": "manual", "objects": list(chosen)}
        self._event("backup.started", service.id, params)
        return backup

    def service_automations(self, service_id: Any) -> dict[str, list[str]]:
        service = self.service(service_id)
        return {kind: list(names) for kind, names in self.automations[service.id].items()}

    def _automations_named(self, service_id: int, wanted: Automations) -> tuple[str, ...]:
        """The automation names ``wanted`` stands for: by kind, or a list of names (a kind
        name meaning all of that kind); 400 naming any the service does not have."""
        active = self.automations[service_id]
        chosen: list[str] = []
        unknown: list[str] = []
        if isinstance(wanted, Mapping):
            for kind, names in wanted.items():
                if kind not in active:
                    raise ApiError(
                        400,
                        f"unknown automation kind {kind} in automations_to_disable; "
                        f"known kinds: {', '.join(active)}",
                    )
                chosen.extend(names)
                unknown.extend(n for n in names if n not in active[kind])
        else:
            for name in wanted or ():
                if name in active:
                    chosen.extend(active[name])
                elif any(name in names for names in active.values()):
                    chosen.append(name)
                else:
                    unknown.append(name)
        if unknown:
            raise ApiError(
                400, f"unknown automation(s) in automations_to_disable: {', '.join(unknown)}"
            )
        return tuple(dict.fromkeys(chosen))

    # -- exports and jobs ---------------------------------------------------------

    def _objects_in(self, backup: Backup, objects: list[str] | None) -> list[str]:
        if not objects:
            return list(backup.objects)
        unknown = [o for o in objects if o not in backup.objects]
        if unknown:
            raise ApiError(400, f"object(s) not in backup {backup.id}: {', '.join(unknown)}")
        return list(objects)

    def export(
        self,
        service_id: Any,
        backup_ref: str,
        *,
        export_format: str | None,
        sql_dialect: str | None,
        include_attachments: bool,
        objects: list[str] | None,
    ) -> Job:
        """Start an export of a backup to CSV or SQL files; the job."""
        backup = self.backup(service_id, backup_ref)
        fmt = checked_enum(export_format, "export_format", EXPORT_FORMATS)
        if fmt == "sql" or sql_dialect is not None:
            sql_dialect = checked_enum(sql_dialect, "sql_dialect", SQL_DIALECTS)
        chosen = self._objects_in(backup, objects)
        ext = f"{sql_dialect}.sql" if fmt == "sql" else "csv"
        results = [f"backup_{backup.id}_{o}.{ext}" for o in chosen]
        if include_attachments:
            results.append(f"backup_{backup.id}_attachments.zip")
        title = acc.default_export_title(backup, self._by_id[backup.service_id], fmt)
        return self._start_job(title, results, backup, "export.started", {"export_format": fmt})

    def export_to_endpoint(
        self,
        service_id: Any,
        backup_ref: str,
        *,
        endpoint_id: str | None,
        objects: list[str] | None,
    ) -> Job:
        """Start an export of a backup to a configured endpoint; the job."""
        backup = self.backup(service_id, backup_ref)
        if endpoint_id is None or not str(endpoint_id).strip():
            raise ApiError(400, "endpoint_id is required")
        endpoint = as_id(endpoint_id)
        if endpoint is None or endpoint < 1:
            raise ApiError(400, f"endpoint_id must be a positive integer, not {endpoint_id!r}")
        chosen = self._objects_in(backup, objects)
        results = [
            f"{o}: {backup.objects[o]['total_items']} records exported to endpoint {endpoint}"
            for o in chosen
        ]
        title = f"Export of backup {backup.id} to endpoint {endpoint}"
        params = {"endpoint_id": endpoint}
        return self._start_job(title, results, backup, "export.started", params)

    def _start_job(
        self, title: str, results: list[str], backup: Backup, key: str, params: dict[str, Any]
    ) -> Job:
        job = Job(self._new_id("job"), title, self.now(), self.config.job_seconds, results)
        self.jobs[job.id] = job
        self._event(key, backup.service_id, {"job_id": job.id, "backup_id": backup.id, **params})
        return job

    def job(self, job_id: Any) -> Job:
        job = self.jobs.get(as_id(job_id) or 0)
        if job is None:
            raise ApiError(404, f"job_id {job_id} not found")
        return job

    # -- seeding --------------------------------------------------------------------

    def seed(self, seed_id: Any) -> Seed:
        """A seed by its ``seed_id`` (or its ``id``, which some clients send)."""
        number = as_id(seed_id)
        if number is not None:
            found = self.seeds.get(number - acc.SEED_ID_BASE) or self.seeds.get(number)
            if found is not None:
                return found
        raise ApiError(404, f"seed_id {seed_id} not found")

    def _template(self, template_id: Any) -> SeedingTemplate:
        template = self.templates.get(as_id(template_id) or 0)
        if template is None:
            raise ApiError(404, f"template_id {template_id} not found")
        return template

    def _sandbox(self, value: Any, name: str, template: SeedingTemplate) -> Service:
        """The destination of a seed or anonymization: a sandbox of the account."""
        if value is None or not str(value).strip():
            raise ApiError(400, f"{name} is required: the service id of the sandbox")
        target = self._by_id.get(as_id(value) or 0)
        if target is None:
            raise ApiError(400, f"{name} {value} is not a service of this account")
        if target.id == template.source_service_id:
            raise ApiError(400, f"{name} must differ from the template's source service")
        if target.archived:
            raise ApiError(400, f"{name} {target.id} is archived")
        if target.org_type == "production":
            raise ApiError(400, f"{name} {target.id} is a production org; sandboxes only")
        return target

    def _source_backup(self, service_id: Any, backup_id: str | None) -> None:
        """A seed or anonymization from a given backup (400 when the service lacks it)."""
        if backup_id is None:
            return
        try:
            self.backup(service_id, str(backup_id).strip())
        except ApiError as exc:
            raise ApiError(400, exc.message) from None

    def start_seed(
        self,
        template_id: Any,
        *,
        destination: str | None,
        seeding_method: str | None,
        disable_automations: bool,
        automations_to_disable: Automations = None,
        backup_id: str | None = None,
        service_id: str | None = None,
    ) -> Seed:
        """Seed a sandbox from a template; refuses what the vendor refuses."""
        template = self._template(template_id)
        target = self._sandbox(destination, "destination", template)
        method = checked_enum(seeding_method, "seeding_method", SEEDING_METHODS)
        if method == "clean_and_insert" and target.org_type == "full_sandbox":
            raise ApiError(
                400,
                "seeding_method clean_and_insert is not supported for a full sandbox destination",
            )
        source = template.source_service_id
        if service_id is not None:
            source_service = self._by_id.get(as_id(service_id) or 0)
            if source_service is None:
                raise ApiError(400, f"service_id {service_id} is not a service of this account")
            source = source_service.id
        self._source_backup(source, backup_id)
        wanted = self._automations_named(target.id, automations_to_disable)
        deleted = template.records // 2 if method == "clean_and_insert" else 0
        seed = Seed(
            self._new_id("seed"), template.id, source, target.id, method,
            disable_automations, wanted, template.records, self.now(), self.config.seed_seconds,
            deleted,
        )  # fmt: skip
        self.seeds[seed.id] = seed
        self._event("seed.started", target.id, {"seed_id": seed.seed_id, "template_id": template.id})
        return seed

    def anonymize(
        self,
        template_id: Any,
        *,
        destination_service_id: str | None,
        disable_automations: bool,
        automations_to_disable: Automations = None,
        backup_id: str | None = None,
    ) -> Job:
        """Anonymize a sandbox with a template; the job (it progresses like an export)."""
        template = self._template(template_id)
        target = self._sandbox(destination_service_id, "destination_service_id", template)
        self._source_backup(template.source_service_id, backup_id)
        disabled = self._automations_named(target.id, automations_to_disable)
        share = max(template.records // max(len(template.objects), 1), 1)
        results = [f"{o}: {share} records anonymized" for o in template.objects]
        if disable_automations and disabled:
            results.append(f"{len(disabled)} automations disabled during the run")
        title = f"Anonymization of {target.displayed_name} with template {template.name}"
        job = Job(
            self._new_id("job"), title, self.now(), self.config.job_seconds, results, "anonymize"
        )
        self.jobs[job.id] = job
        self._event(
            "seed.anonymize.started", target.id, {"job_id": job.id, "template_id": template.id}
        )
        return job

    def anonymize_job(self, anonymize_id: Any) -> Job:
        job = self.jobs.get(as_id(anonymize_id) or 0)
        if job is None or job.kind != "anonymize":
            raise ApiError(404, f"anonymize_id {anonymize_id} not found")
        return job

    # -- GDPR -----------------------------------------------------------------------

    def gdpr(
        self,
        kind: str,
        service_id: Any,
        *,
        record_id: str | None,
        table_name: str | None,
        field: str | None = None,
        value: str | None = None,
        comment: str | None = None,
    ) -> GdprCall:
        """Accept a forget or rectify request; record it and append its event."""
        service = self.service(service_id)
        record = checked_text(record_id, "record_id")
        table = checked_api_name(table_name, "table_name")
        digest = None
        if kind == "rectify":
            field = checked_api_name(field, "field")
            if value is None:
                raise ApiError(400, "value is required")
            digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
        elif kind == "forget":
            field = None
        else:
            raise ValueError(f"unknown GDPR call kind {kind!r}")
        assert record is not None
        call = GdprCall(
            self._new_id("gdpr"), service.id, kind, record, table, field, comment,
            datetime.fromtimestamp(self.now(), UTC), digest,
        )  # fmt: skip
        self.gdpr_calls.append(call)
        self.erasures.add(self.now(), service.id, table, record, field, value if kind == "rectify" else None)
        params: dict[str, Any] = {"request_id": call.id, "record_id": record, "table_name": table}
        if field is not None:
            params["field"] = field
        self._event(f"gdpr.{kind}", service.id, params)
        return call

    # -- events ---------------------------------------------------------------------

    def _event(
        self,
        key: str,
        service_id: int | None,
        parameters: dict[str, Any],
        ip_address: str | None = None,
        *,
        source: str = "API",
    ) -> int:
        fields: dict[str, Any] = {
            "key": key,
            "source": source,
            "user_email": self.config.email,
            "user_id": ACCOUNT_USER_ID,
            "ip_address": ip_address or "127.0.0.1",
            "parameters": parameters,
        }
        if service_id is not None:
            fields["service_id"] = service_id
        return self.events.append(self.now(), **fields)

    def add_events(self, count: int) -> int:
        """Grow the history by ``count`` synthetic events; the new last event id."""
        return self.events.add_synthetic(count, self.now())

    def inject_malformed_event(self, event_id: int, kind: str) -> None:
        """Serve a broken event at ``event_id``: missing_event_id, bad_created_at, not_object."""
        self.events.inject_malformed(event_id, kind)

    def events_page(self, after: int) -> list[Any]:
        return self.events.page(after, self.config.events_page_size)
