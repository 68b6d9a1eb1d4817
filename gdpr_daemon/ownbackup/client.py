"""The async OwnBackup API client: one typed method per call of the API.

Arguments are checked before anything is sent (ValueError); answers are parsed into
frozen dataclasses (BadAnswer when malformed); failures are the error tree of
:mod:`.errors`.  Sessions, re-logins and retries live in :mod:`.connection`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from urllib.parse import urljoin, urlsplit

from . import arguments as args
from . import download as downloads
from .connection import Connection
from .endpoints import check_base_url
from .models import (
    Backup,
    BackupObject,
    GdprSubmission,
    Job,
    Seed,
    SeedTemplate,
    Service,
    parse_automations,
    parse_id,
    parse_list,
    parse_object,
)
from .transport import FormValue, json_body

__all__ = ["OwnBackupClient"]


class OwnBackupClient(Connection):
    """``async with OwnBackupClient(config) as client: await client.list_services()``.

    One ``aiohttp.ClientSession`` and connection pool per client; leaving the
    ``async with`` logs out (session auth) and closes the pool.  ``client.health``
    tells ``/readyz`` how the API has been doing.
    """

    # -- services and backups ---------------------------------------------------------
    async def list_services(self) -> list[Service]:
        """Every backup service of the account."""
        name = "list_services"
        return await self._get_json(
            name,
            self._url("services"),
            lambda obj: [
                Service.from_json(item, name) for item in parse_list(obj, name, "services")
            ],
        )

    async def get_service(self, service_id: int) -> Service:
        """One service; NotFound when the account has no such service."""
        sid = args.whole(service_id, "service_id")
        return await self._get_json(
            "get_service",
            self._url("service", service_id=sid),
            lambda obj: Service.from_json(obj, "get_service"),
        )

    async def backup_now(self, service_id: int, objects: Sequence[str] | None = None) -> None:
        """Start a backup of all the service's objects now (a call without a body).

        With ``objects`` this is :meth:`backup_specific_objects_now`.
        """
        if objects is not None:
            await self.backup_specific_objects_now(service_id, objects)
            return
        name = "backup_now"
        url = self._url(name, service_id=args.whole(service_id, "service_id"))
        await self._call(name, "POST", url, lambda a: parse_object(json_body(a, name, empty={}), name))

    async def backup_specific_objects_now(self, service_id: int, objects: Sequence[str]) -> None:
        """Start a backup of only ``objects`` of the service now (``list_of_objects``)."""
        sid = args.whole(service_id, "service_id")
        chosen = args.names(objects, "objects")
        if not chosen:
            raise ValueError("objects must name at least one object, such as ['Account', 'Contact'].")
        await self._post_json(
            "backup_specific_objects_now",
            self._url("backup_specific_objects_now", service_id=sid),
            {"list_of_objects": chosen},
            lambda obj: parse_object(obj, "backup_specific_objects_now"),
        )

    async def list_backups(self, service_id: int) -> list[Backup]:
        """The backups of a service."""
        name = "list_backups"
        sid = args.whole(service_id, "service_id")
        return await self._get_json(
            name,
            self._url("backups", service_id=sid),
            lambda obj: [Backup.from_json(item, name) for item in parse_list(obj, name, "backups")],
        )

    async def get_backup(self, service_id: int, backup_id: int | str = "last") -> Backup:
        """One backup of a service, or its latest with ``"last"``."""
        url = self._url(
            "backup",
            service_id=args.whole(service_id, "service_id"),
            backup_id=args.backup_ref(backup_id),
        )
        return await self._get_json(
            "get_backup", url, lambda obj: Backup.from_json(obj, "get_backup")
        )

    async def backup_objects(
        self, service_id: int, backup_id: int | str = "last"
    ) -> list[BackupObject]:
        """The object sections of a backup, with their download links."""
        name = "backup_objects"
        url = self._url(
            "backup_objects",
            service_id=args.whole(service_id, "service_id"),
            backup_id=args.backup_ref(backup_id),
        )
        return await self._get_json(
            name,
            url,
            lambda obj: [
                BackupObject.from_json(item, name) for item in parse_list(obj, name, "objects")
            ],
        )

    async def download(self, url: str) -> bytes:
        """The body behind a download link (absolute, or relative to the base URL).

        The session credential goes only to the API's own origin: a link elsewhere
        (such as a signed storage URL) is fetched without it.  Redirects are not followed.
        """
        if not isinstance(url, str) or not url.strip():
            raise ValueError("download needs a download link.")
        full = urljoin(self.config.base_url + "/", url.strip())
        check_base_url(
            full.split("?", 1)[0].split("#", 1)[0],
            what="download link",
            allow_insecure_http=self.config.allow_insecure_http,
        )
        same_origin = urlsplit(full)[:2] == self._origin
        return await self._call("download", "GET", full, lambda a: a.body, with_auth=same_origin)

    def stream_download(
        self, link: str, *, chunk_bytes: int = downloads.CHUNK_BYTES
    ) -> AbstractAsyncContextManager[AsyncIterator[bytes]]:
        """The body behind a download link as chunks while they arrive, in constant memory.

        ``async with client.stream_download(section.download_link) as chunks:``.  The link
        must be on the API's own host (the credential goes with it): any other is refused
        with :class:`~.download.ForeignLink` before a connection is made.  See
        :mod:`.download`.
        """
        return downloads.stream(self, link, chunk_bytes=chunk_bytes)

    async def export(
        self,
        service_id: int,
        backup_id: int | str = "last",
        export_format: str = "csv",
        *,
        sql_dialect: str | None = None,
        include_attachments: bool = False,
        objects: Sequence[str] | None = None,
    ) -> int:
        """Start an export of a backup to CSV or SQL; the job id."""
        sid = args.whole(service_id, "service_id")
        ref = args.backup_ref(backup_id)
        fmt, dialect = args.export_options(export_format, sql_dialect)
        form: dict[str, FormValue] = {
            "export_format": fmt,
            "include_attachments": bool(include_attachments),
            "sql_dialect": dialect,
            "objects": args.names(objects, "objects"),
        }
        return await self._post_json(
            "export",
            self._url("export", service_id=sid, backup_id=ref),
            form,
            lambda obj: parse_id(obj, "export", ("job_id", "id")),
        )

    async def export_to_endpoint(
        self,
        service_id: int,
        backup_id: int | str,
        endpoint_id: int,
        objects: Sequence[str] | None = None,
    ) -> int:
        """Start an export of a backup to a configured endpoint; the job id."""
        url = self._url(
            "export_to_endpoint",
            service_id=args.whole(service_id, "service_id"),
            backup_id=args.backup_ref(backup_id),
        )
        form = {
            "endpoint_id": args.whole(endpoint_id, "endpoint_id"),
            "objects": args.names(objects, "objects"),
        }
        return await self._post_json(
            "export_to_endpoint",
            url,
            form,
            lambda obj: parse_id(obj, "export_to_endpoint", ("job_id", "id")),
        )

    # -- GDPR ------------------------------------------------------------------------------
    async def gdpr_forget(
        self, service_id: int, *, record_id: str, table_name: str, comment: str | None = None
    ) -> GdprSubmission:
        """Erase a record from every backup of the service (GDPR Art. 17)."""
        sid = args.whole(service_id, "service_id")
        form = {
            "record_id": args.text(record_id, "record_id"),
            "table_name": args.text(table_name, "table_name"),
            "comment": None if comment is None else args.text(comment, "comment", allow_empty=True),
        }
        return await self._post_json(
            "gdpr_forget",
            self._url("gdpr_forget", service_id=sid),
            form,
            lambda obj: GdprSubmission.from_json(obj, "gdpr_forget"),
        )

    async def gdpr_rectify(
        self,
        service_id: int,
        *,
        record_id: str,
        table_name: str,
        field: str,
        value: str,
        comment: str | None = None,
    ) -> GdprSubmission:
        """Correct one field of a record in every backup of the service (GDPR Art. 16)."""
        sid = args.whole(service_id, "service_id")
        form = {
            "record_id": args.text(record_id, "record_id"),
            "table_name": args.text(table_name, "table_name"),
            "field": args.text(field, "field"),
            "value": args.text(value, "value", allow_empty=True),
            "comment": None if comment is None else args.text(comment, "comment", allow_empty=True),
        }
        return await self._post_json(
            "gdpr_rectify",
            self._url("gdpr_rectify", service_id=sid),
            form,
            lambda obj: GdprSubmission.from_json(obj, "gdpr_rectify"),
        )

    # -- jobs and events ---------------------------------------------------------------------
    async def list_jobs(self) -> list[Job]:
        """The account's jobs."""
        name = "list_jobs"
        return await self._get_json(
            name,
            self._url("jobs"),
            lambda obj: [Job.from_json(item, name) for item in parse_list(obj, name, "jobs")],
        )

    async def get_job(self, job_id: int) -> Job:
        """One job, such as an export started earlier."""
        url = self._url("job", job_id=args.whole(job_id, "job_id"))
        return await self._get_json("get_job", url, lambda obj: Job.from_json(obj, "get_job"))

    async def events(self, from_id: int | None = None) -> list[object]:
        """ONE page of account events after ``from_id``, as received (not validated).

        The consumer checks each item, so one malformed event does not fail the page;
        only a body that is not a JSON list is a BadAnswer.
        """
        params = None if from_id is None else {"from": str(args.whole(from_id, "from_id"))}
        return await self._get_json(
            "events",
            self._url("events"),
            lambda obj: list(parse_list(obj, "events", "events")),
            params=params,
        )

    # -- seeding and automations ---------------------------------------------------------------
    async def seeding_templates(self) -> list[SeedTemplate]:
        """The account's seeding templates."""
        name = "seeding_templates"
        return await self._get_json(
            name,
            self._url("seeding_templates"),
            lambda obj: [
                SeedTemplate.from_json(item, name) for item in parse_list(obj, name, "templates")
            ],
        )

    async def seed_info(self, seed_id: int) -> Seed:
        """One seeding run, by its ``seed_id``."""
        url = self._url("seed", seed_id=args.whole(seed_id, "seed_id"))
        return await self._get_json("seed_info", url, lambda obj: Seed.from_json(obj, "seed_info"))

    async def start_seed(
        self,
        template_id: int,
        *,
        destination: int | str,
        seeding_method: str,
        disable_automations: bool = False,
        automations_to_disable: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
        disable_validation_rules: bool | None = None,
        reindex: bool | None = None,
        backup_id: int | str | None = None,
        service_id: int | None = None,
    ) -> Seed:
        """Seed a destination org from a template.

        ``automations_to_disable`` by kind (``{"ApexTrigger": ["Account.BeforeInsert"]}``, as
        the active automations answer them) or as a list of names; ``backup_id`` and
        ``service_id`` seed from another backup or service than the template's newest.
        """
        tid = args.whole(template_id, "template_id")
        method = args.choice(seeding_method, "seeding_method", args.SEEDING_METHODS)
        form = {
            "destination": args.destination(destination),
            "seeding_method": method,
            "disable_automations": bool(disable_automations),
            "automations_to_disable": args.automations(automations_to_disable, "automations_to_disable"),
            "disable_validation_rules": None if disable_validation_rules is None else bool(disable_validation_rules),
            "reindex": None if reindex is None else bool(reindex),
            "backup_id": None if backup_id is None else args.backup_ref(backup_id),
            "service_id": None if service_id is None else args.whole(service_id, "service_id"),
        }
        return await self._post_json(
            "start_seed",
            self._url("start_seed", template_id=tid),
            form,
            lambda obj: Seed.from_json(obj, "start_seed"),
        )

    async def anonymize(
        self,
        template_id: int,
        *,
        destination_service_id: int,
        disable_automations: bool = False,
        automations_to_disable: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
        backup_id: int | str | None = None,
    ) -> int:
        """Anonymize a sandbox with a template; the job id (follow it with :meth:`anonymize_info`)."""
        tid = args.whole(template_id, "template_id")
        form = {
            "destination_service_id": args.whole(destination_service_id, "destination_service_id"),
            "disable_automations": bool(disable_automations),
            "automations_to_disable": args.automations(automations_to_disable, "automations_to_disable"),
            "backup_id": None if backup_id is None else args.backup_ref(backup_id),
        }
        return await self._post_json(
            "anonymize",
            self._url("anonymize", template_id=tid),
            form,
            lambda obj: parse_id(obj, "anonymize", ("job_id", "id")),
        )

    async def anonymize_info(self, anonymize_id: int) -> Job:
        """One anonymization job, by the job id :meth:`anonymize` answered."""
        url = self._url("anonymize_job", anonymize_id=args.whole(anonymize_id, "anonymize_id"))
        return await self._get_json(
            "anonymize_info", url, lambda obj: Job.from_json(obj, "anonymize_info")
        )

    async def automations(self, service_id: int) -> dict[str, list[str]]:
        """The active automations of a service's org: ``Object.Name`` strings by kind
        (ApexTrigger, ValidationRule...)."""
        url = self._url("automations", service_id=args.whole(service_id, "service_id"))
        return await self._get_json(
            "automations", url, lambda obj: parse_automations(obj, "automations")
        )
