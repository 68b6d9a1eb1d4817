"""The DPO's commands: `submit` and `requests list|show|retry|cancel`."""

from __future__ import annotations

import argparse
import sys

from gdpr_daemon.commands.common import actor, settings_from_args, setup_logging

EXIT_OK = 0


async def cmd_submit(args: argparse.Namespace) -> int:
    from gdpr_daemon.db.engine import make_engine
    from gdpr_daemon.db.requests import NewRequest, insert_requests

    settings = settings_from_args(args)
    setup_logging(settings, quiet=True)
    value = args.value if args.kind == "rectify" else None
    if args.kind == "rectify" and value == "-":
        value = sys.stdin.readline().rstrip("\n")
    req = NewRequest(
        request_type=args.kind,
        service_id=args.service_id,
        table_name=args.table,
        record_id=args.record_id,
        field=getattr(args, "field", None),
        value=value,
        comment=args.comment,
        external_ref=args.external_ref,
        requested_by=actor(args),
    )
    engine = make_engine(settings.require_database(), pool_size=1)
    try:
        async with engine.begin() as conn:
            (rid,) = await insert_requests(conn, [req])
    finally:
        await engine.dispose()
    print(f"request {rid} enqueued ({args.kind}, service {args.service_id}); follow it with: gdpr-daemon requests show {rid}")
    return EXIT_OK


REQUEST_COLUMNS = [
    ("id", "ID"), ("request_type", "TYPE"), ("service_id", "SERVICE"), ("status", "STATUS"),
    ("attempts", "TRIES"), ("ownbackup_request_id", "OWNBACKUP ID"), ("received_at", "RECEIVED"),
    ("due_at", "DUE"), ("external_ref", "REF"), ("last_error", "ERROR"),
]  # fmt: skip


async def cmd_requests(args: argparse.Namespace) -> int:
    from gdpr_daemon import render
    from gdpr_daemon.db import requests as rq
    from gdpr_daemon.db.engine import make_engine

    settings = settings_from_args(args)
    setup_logging(settings, quiet=True)
    engine = make_engine(settings.require_database(), pool_size=1)
    try:
        if args.action == "list":
            rows = await rq.list_requests(
                engine,
                statuses=args.status or (),
                request_type=args.type,
                service_id=args.service_id,
                overdue=args.overdue,
                unconfirmed_hours=settings.events_unconfirmed_after_hours if args.unconfirmed else None,
                limit=args.limit,
            )
            if args.format == "json":
                print(render.to_json(rows))
            elif args.format == "csv":
                sys.stdout.write(render.to_csv(rows, [k for k, _ in REQUEST_COLUMNS]))
            elif rows:
                print(render.table(rows, REQUEST_COLUMNS))
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
    finally:
        await engine.dispose()
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    s = sub.add_parser("submit", help="enqueue one forget or rectify request",
                       description="Insert one request into gdpr_requests, as a DPO would with SQL.")  # fmt: skip
    kinds = s.add_subparsers(dest="kind", metavar="KIND", required=True)
    for kind, text_ in (("forget", "erase a record from the backups (GDPR Art. 17)"),
                        ("rectify", "correct one field of a record in the backups (GDPR Art. 16)")):  # fmt: skip
        k = kinds.add_parser(kind, help=text_, description=text_)
        k.add_argument("--service-id", type=int, required=True, metavar="N",
                       help="OwnBackup backup service id (see `gdpr-daemon services`)")  # fmt: skip
        k.add_argument("--table", required=True, metavar="T", help="Salesforce object, e.g. Contact")
        k.add_argument("--record-id", required=True, metavar="R", help="id of the record in that object")
        if kind == "rectify":
            k.add_argument("--field", required=True, metavar="F", help="field to correct, e.g. Email")
            k.add_argument("--value", required=True, metavar="V",
                           help="the corrected value; '-' reads it from standard input (keeps it out of "
                           "shell history)")  # fmt: skip
        k.add_argument("--comment", metavar="C", help="free text passed to the OwnBackup API")
        k.add_argument("--external-ref", metavar="X", help="your case or ticket id (unique)")
        k.add_argument("--actor", metavar="NAME", help="who enters it (default: your user name)")
        k.set_defaults(func=cmd_submit)

    s = sub.add_parser("requests", help="list, show, retry or cancel requests")
    acts = s.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = acts.add_parser("list", help="list requests, newest first")
    a.add_argument("--status", action="append", metavar="S",
                   help="only this status (repeatable): pending, in_flight, submitted, failed, rejected, cancelled, awaiting_approval")  # fmt: skip
    a.add_argument("--type", choices=("forget", "rectify"), help="only this request type")
    a.add_argument("--service-id", type=int, metavar="N", help="only this service")
    a.add_argument("--overdue", action="store_true", help="only open requests past their due date")
    a.add_argument("--unconfirmed", action="store_true",
                   help="only submitted requests no OwnBackup event has confirmed after events_unconfirmed_after_hours")  # fmt: skip
    a.add_argument("--limit", type=int, default=100, metavar="N", help="at most N rows (default 100)")
    a.add_argument("--format", choices=("table", "json", "csv"), default="table", help="output format")
    a.set_defaults(func=cmd_requests)
    a = acts.add_parser("show", help="one request and its whole history")
    a.add_argument("id", type=int)
    a.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    a.set_defaults(func=cmd_requests)
    a = acts.add_parser("retry", help="send a failed or rejected request again")
    a.add_argument("id", type=int)
    a.add_argument("--actor", metavar="NAME", help="who retries it (default: your user name)")
    a.set_defaults(func=cmd_requests)
    a = acts.add_parser("cancel", help="cancel a request not yet submitted")
    a.add_argument("id", type=int)
    a.add_argument("--reason", metavar="TEXT", help="why, for the history")
    a.add_argument("--actor", metavar="NAME", help="who cancels it (default: your user name)")
    a.set_defaults(func=cmd_requests)
