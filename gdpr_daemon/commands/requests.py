"""Requests: `submit`, and `requests list|show|approve|extend|verify|retry|cancel`."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gdpr_daemon.commands.common import ACTOR, COMMENT, REASON, Needs, actor, sync_intake_settings
from gdpr_daemon.rules import MAX_VALUE_LENGTH

if TYPE_CHECKING:
    from gdpr_daemon.runtime import Runtime

EXIT_OK = 0


def _awaiting_note(n: int, ids: list[int]) -> str:
    if not n:
        return ""
    which = str(ids[0]) if len(ids) == 1 else f"{ids[0]}-{ids[-1]}"
    return (
        f"\n{'it awaits' if len(ids) == 1 else 'they await'} approval by a second person (four eyes): "
        f"gdpr-daemon requests approve {which}"
    )


async def cmd_submit(args: argparse.Namespace, rt: Runtime) -> int:
    from gdpr_daemon.db.requests import NewRequest, RequestError, insert_requests, statuses_of
    from gdpr_daemon.dpo import fanout
    from gdpr_daemon.rules import request_problems

    value = args.value if args.kind == "rectify" else None
    if args.kind == "rectify" and value == "-":
        # Bounded: a value longer than a rectify value may be is refused below, not read whole.
        value = sys.stdin.readline(MAX_VALUE_LENGTH + 2).rstrip("\n")
    req = NewRequest(
        request_type=args.kind,
        service_id=1 if args.all_services else args.service_id,  # a placeholder with --all-services
        table_name=args.table,
        record_id=args.record_id,
        field=getattr(args, "field", None),
        value=value,
        comment=args.comment,
        external_ref=args.external_ref,
        requested_by=actor(args),
    )
    problems = request_problems(req)
    if problems:
        raise RequestError("refused: " + "; ".join(problems))
    batch = [req]
    services: dict[int, str] = {}
    if args.all_services:
        client = await rt.open_api()
        services = {s.id: s.displayed_name or "" for s in await client.list_services()}
        if not services:
            raise RequestError("the OwnBackup account has no services; nothing was entered")
        base = args.external_ref or fanout.new_group_prefix()
        if fanout.ref_too_long(base, list(services)):
            raise RequestError("refused: external_ref is too long to add the service ids to it")
        batch = fanout.expand(req, list(services), base)
    await sync_intake_settings(rt)
    async with rt.engine.begin() as conn:
        ids = await insert_requests(conn, batch)
        states = await statuses_of(conn, ids)
    awaiting = sum(1 for s in states.values() if s == "awaiting_approval")
    if args.all_services:
        listed = ", ".join(f"{sid} {name}".strip() for sid, name in sorted(services.items()))
        print(f"{len(ids)} requests enqueued ({args.kind}), one per service of the account: {listed}.\n"
              f"They share the external_ref {base}/<service id>; follow them with: "
              f"gdpr-daemon requests list --ref {base}" + _awaiting_note(awaiting, ids))  # fmt: skip
    else:
        (rid,) = ids
        print(f"request {rid} enqueued ({args.kind}, service {args.service_id}); follow it with: "
              f"gdpr-daemon requests show {rid}" + _awaiting_note(awaiting, ids))  # fmt: skip
    return EXIT_OK


# ---- requests list ------------------------------------------------------------------------

REQUEST_COLUMNS = [
    ("id", "ID"), ("request_type", "TYPE"), ("service_id", "SERVICE"), ("status", "STATUS"),
    ("received", "RECEIVED"), ("age", "AGE"), ("due", "DUE"), ("due_in", "DUE IN"),
    ("ownbackup_request_id", "OWNBACKUP ID"), ("external_ref", "REF"), ("last_error", "ERROR"),
]  # fmt: skip
CSV_COLUMNS = [
    "id", "request_type", "service_id", "table_name", "status", "attempts", "ownbackup_request_id",
    "received_at", "due_at", "original_due_at", "submitted_at", "external_ref", "requested_by",
    "approved_by", "last_error",
]  # fmt: skip

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([dhw]?)\s*\Z", re.IGNORECASE)


def duration(text: str) -> float:
    """``7d``, ``36h``, ``2w`` or a number of days -> seconds (an argparse type)."""
    m = _DURATION.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 7d, 36h or 2w")
    unit = {"": 86400, "d": 86400, "h": 3600, "w": 7 * 86400}[m.group(2).lower()]
    return float(m.group(1)) * unit


def span(seconds: float) -> str:
    """A readable length of time: 3d, 5h, 12m."""
    seconds = abs(seconds)
    if seconds >= 86400:
        return f"{int(seconds // 86400)}d"
    if seconds >= 3600:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 60)}m"


def _due_in(row: dict[str, Any], now: datetime) -> str:
    due = row["due_at"]
    ext = " (extended)" if row.get("original_due_at") else ""
    if row["status"] == "cancelled":
        return "-"
    if row["status"] == "submitted":
        done = row.get("submitted_at")
        if done is None or done <= due:
            return "met"
        return f"late {span((done - due).total_seconds())}"
    left = (due - now).total_seconds()
    return (f"in {span(left)}" if left >= 0 else f"OVERDUE {span(left)}") + ext


def table_rows(rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Rows with the computed columns people read: dates, age, time to the deadline."""
    return [
        dict(r, received=r["received_at"].strftime("%Y-%m-%d"), age=span((now - r["received_at"]).total_seconds()),
             due=r["due_at"].strftime("%Y-%m-%d %H:%MZ"), due_in=_due_in(r, now))  # fmt: skip
        for r in rows
    ]


def parse_ids(items: list[str]) -> list[int]:
    """``12``, ``12-20`` -> request ids."""
    ids: list[int] = []
    for item in items:
        lo, sep, hi = item.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise argparse.ArgumentTypeError(f"{item!r} is not a request id or a range like 12-20")
        first, last = int(lo), int(hi) if sep else int(lo)
        if last < first or last - first > 1_000_000:
            raise argparse.ArgumentTypeError(f"{item!r} is not a usable range of request ids")
        ids += range(first, last + 1)
    return ids


async def cmd_requests(args: argparse.Namespace, rt: Runtime) -> int:
    from gdpr_daemon import render
    from gdpr_daemon.db import deadlines
    from gdpr_daemon.db import requests as rq

    engine, settings = rt.engine, rt.settings
    if args.action == "list":
        rows = await rq.list_requests(
            engine,
            statuses=args.status or (),
            request_type=args.type,
            service_id=args.service_id,
            overdue=args.overdue,
            due_within_seconds=args.due_within,
            ref=args.ref,
            unconfirmed_hours=settings.events_unconfirmed_after_hours if args.unconfirmed else None,
            limit=args.limit,
        )
        if args.format == "json":
            print(render.to_json(rows))
        elif args.format == "csv":
            sys.stdout.write(render.to_csv(rows, CSV_COLUMNS))
        elif rows:
            print(render.table(table_rows(rows, datetime.now(UTC)), REQUEST_COLUMNS))
            if args.limit and len(rows) == args.limit:
                print(f"(the first {args.limit}; --limit 0 shows all)")
        else:
            print("no requests match")
    elif args.action == "show":
        row, history = await rq.get_request(engine, args.id)
        if args.format == "json":
            print(render.to_json({"request": row, "history": history}))
        else:
            width = max(len(k) for k in row)
            for k, v in row.items():
                print(f"{k.ljust(width)}  {render.fmt(v)}")
            print("\nhistory:")
            print(render.table(history, [("at", "AT"), ("from_status", "FROM"), ("to_status", "TO"),
                                         ("actor", "BY"), ("detail", "DETAIL")], max_width=120))  # fmt: skip
    elif args.action == "retry":
        await rq.retry_request(engine, args.id, actor=actor(args))
        print(f"request {args.id} is pending again; the daemon will submit it")
    elif args.action == "cancel":
        await rq.cancel_request(engine, args.id, actor=actor(args), reason=args.reason)
        print(f"request {args.id} cancelled")
    elif args.action == "approve":
        who = actor(args)
        ids = await rq.approve_requests(engine, parse_ids(args.ids), actor=who)
        what = f"request {ids[0]}" if len(ids) == 1 else f"{len(ids)} requests ({ids[0]} to {ids[-1]})"
        print(f"{what} approved by {who}; the daemon will submit {'it' if len(ids) == 1 else 'them'}")
    elif args.action == "extend":
        ext = await deadlines.extend_deadline(
            engine, args.id, months=args.months, reason=args.reason, actor=actor(args)
        )
        print(f"the deadline of request {ext.request_id} is now {ext.due_at:%Y-%m-%d %H:%MZ} "
              f"(was {ext.original_due_at:%Y-%m-%d %H:%MZ}); the reason is in its history. "
              "Tell the data subject of the extension and its reason (GDPR Art. 12(3)).")  # fmt: skip
    return EXIT_OK


# ---- requests verify ----------------------------------------------------------------------

EXIT_NOT_VERIFIED = 1
VERIFY_HELP = (
    "For each submitted forget or rectify: find the newest backup of its service completed after the "
    "submission, stream the CSV of the object section named like its table (authenticated, constant memory, "
    "any size) and look for the record: a forget is verified when the record is absent, a rectify when the "
    "record's field holds the new value (compared by SHA-256, so it works after the value was erased). "
    "'verified: ...' and 'still present in backup ...' are recorded in the request's history; 'not yet "
    "verifiable' (no backup completed after the submission) is only printed. Exit status: 0 when every "
    "request given is verified; 1 when any is still present, not yet verifiable or could not be checked; "
    "2 for bad usage."
)


async def cmd_verify(args: argparse.Namespace, rt: Runtime) -> int:
    from gdpr_daemon import render
    from gdpr_daemon.verify.batch import describe, verify_ids

    results = await verify_ids(rt.engine, rt.client, parse_ids(args.ids), actor=actor(args))
    if args.format == "json":
        print(render.to_json(results))
    else:
        for r in results:
            print(describe(r))
    return EXIT_OK if all(r["verified"] for r in results) else EXIT_NOT_VERIFIED


def _ids_arg(text: str) -> str:
    parse_ids([text])
    return text


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    _add_submit(sub)
    _add_requests(sub)


def _add_submit(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("submit", help="enqueue one forget or rectify request",
                       description="Insert one request into gdpr_requests, as a DPO would with SQL, after "
                       "checking it. With --all-services, one request per service of the account.")  # fmt: skip
    kinds = s.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, text_ in (("forget", "erase a record from the backups (GDPR Art. 17)"),
                        ("rectify", "correct one field of a record in the backups (GDPR Art. 16)")):  # fmt: skip
        k = kinds.add_parser(kind, help=text_, description=text_)
        where = k.add_mutually_exclusive_group(required=True)
        where.add_argument("--service-id", type=int, metavar="N",
                           help="OwnBackup backup service id (see `gdpr-daemon services`)")  # fmt: skip
        where.add_argument("--all-services", action="store_true",
                           help="one request per service of the account, disabled and archived ones too "
                           "(their backups still hold the data); refs become REF/<service id>")  # fmt: skip
        k.add_argument("--table", required=True, metavar="T", help="Salesforce object, e.g. Contact")
        k.add_argument("--record-id", required=True, metavar="R", help="id of the record in that object")
        if kind == "rectify":
            k.add_argument("--field", required=True, metavar="F", help="field to correct, e.g. Email")
            k.add_argument("--value", required=True, metavar="V",
                           help="the corrected value; '-' reads it from standard input (keeps it out of "
                           "shell history)")  # fmt: skip
        k.add_argument("--comment", metavar="C", type=COMMENT, help="free text passed to the OwnBackup API")
        k.add_argument("--external-ref", metavar="X", help="your case or ticket id (unique)")
        k.add_argument("--actor", metavar="NAME", type=ACTOR, help="who enters it (default: your user name)")
        k.set_defaults(func=cmd_submit, needs=Needs())


def _add_list(acts: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    a = acts.add_parser("list", help="list requests, newest first (by deadline with --overdue or --due-within)")
    a.add_argument("--status", action="append", metavar="S",
                   help="only this status (repeatable): awaiting_approval, pending, in_flight, submitted, "
                   "failed, rejected, cancelled")  # fmt: skip
    a.add_argument("--type", choices=("forget", "rectify"), help="only this request type")
    a.add_argument("--service-id", type=int, metavar="N", help="only this service")
    a.add_argument("--overdue", action="store_true", help="only open requests past their due date")
    a.add_argument("--due-within", type=duration, metavar="DURATION",
                   help="only open requests due within this time, like 7d or 36h (overdue ones included)")  # fmt: skip
    a.add_argument("--ref", metavar="X", help="only external_ref X and the group X/<service id> (--all-services)")
    a.add_argument("--unconfirmed", action="store_true",
                   help="only submitted requests no OwnBackup event has confirmed after "
                   "events_unconfirmed_after_hours")  # fmt: skip
    a.add_argument("--limit", type=int, default=100, metavar="N", help="at most N rows (default 100; 0 for all)")
    a.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")
    a.set_defaults(func=cmd_requests, needs=Needs())


def _add_requests(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("requests", help="list, show, approve, extend, verify, retry or cancel requests")
    acts = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    _add_list(acts)
    a = acts.add_parser("show", help="one request and its whole history")
    a.add_argument("id", type=int)
    a.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    a.set_defaults(func=cmd_requests, needs=Needs())
    a = acts.add_parser("approve", help="four eyes: approve requests another person entered",
                        description="Move requests from awaiting_approval to pending, all or none. The "
                        "approver must differ from who entered each request; both names go into the "
                        "history.")  # fmt: skip
    a.add_argument("ids", nargs="+", metavar="ID", type=_ids_arg, help="request id, or a range like 12-20")
    a.add_argument("--actor", metavar="NAME", type=ACTOR, help="who approves (default: your user name)")
    a.set_defaults(func=cmd_requests, needs=Needs())
    a = acts.add_parser("extend", help="extend a deadline once by up to two further months (GDPR Art. 12(3))",
                        description="Extend the deadline of an open request once, within its first month, "
                        "by one or two further months counted from receipt. The reason goes into the history; "
                        "tell the data subject of it.")  # fmt: skip
    a.add_argument("id", type=int)
    a.add_argument("--reason", required=True, metavar="TEXT", type=REASON,
                   help="why (for the history and the data subject)")  # fmt: skip
    a.add_argument("--months", type=int, choices=(1, 2), default=2, help="further months (default 2)")
    a.add_argument("--actor", metavar="NAME", type=ACTOR, help="who extends it (default: your user name)")
    a.set_defaults(func=cmd_requests, needs=Needs())
    a = acts.add_parser("verify", help="prove an erasure in the backups: look for the record in the newest backup",
                        description=VERIFY_HELP)  # fmt: skip
    a.add_argument("ids", nargs="+", metavar="ID", type=_ids_arg, help="request id, or a range like 12-20")
    a.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    a.add_argument("--actor", metavar="NAME", type=ACTOR,
                   help="who verifies, for the history (default: your user name)")  # fmt: skip
    a.set_defaults(func=cmd_verify, needs=Needs(api=True))
    a = acts.add_parser("retry", help="send a failed or rejected request again")
    a.add_argument("id", type=int)
    a.add_argument("--actor", metavar="NAME", type=ACTOR, help="who retries it (default: your user name)")
    a.set_defaults(func=cmd_requests, needs=Needs())
    a = acts.add_parser("cancel", help="cancel a request not yet submitted")
    a.add_argument("id", type=int)
    a.add_argument("--reason", metavar="TEXT", type=REASON, help="why, for the history")
    a.add_argument("--actor", metavar="NAME", type=ACTOR, help="who cancels it (default: your user name)")
    a.set_defaults(func=cmd_requests, needs=Needs())
