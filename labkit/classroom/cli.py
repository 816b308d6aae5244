"""``labkit classroom serve|join|leave|status|flush|forget|rotate``: registered on ``labkit`` by :mod:`labkit.cli`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from labkit.classroom import client
from labkit.classroom.limits import EVENTS_PER_MINUTE, MAX_LEARNERS
from labkit.classroom.store import Store
from labkit.core.commands import Subcommands
from labkit.core.errors import ExitCode, UsageError
from labkit.core.i18n import _
from labkit.core.paths import state_dir


def default_db() -> Path:
    """``state_dir()/classroom/classroom.db``: the instructor's results, kept across restarts.

    The folder is labkit's own, so it is made (or made again) 0700: it holds learners' results.
    """
    folder = state_dir() / "classroom"
    folder.mkdir(mode=0o700, exist_ok=True)
    with contextlib.suppress(OSError):
        os.chmod(folder, 0o700)
    return folder / "classroom.db"


def register(subcommands: Subcommands) -> None:
    """Add ``classroom`` to labkit's sub-commands."""
    p = subcommands.add_parser(
        "classroom", help=_("a live view of learners' check results for the instructor; join one as a learner")
    )
    p.add_argument("action", choices=["serve", "join", "leave", "status", "flush", "forget", "rotate"])
    p.add_argument("args", nargs="*", metavar="ARG", help=_("join URL TOKEN; forget NAME"))
    p.add_argument("--name", help=_("join: your name, as the instructor sees it"))
    p.add_argument("--host", help=_("serve: address to listen on (default 127.0.0.1; another needs --public)"))
    p.add_argument("--port", type=int, help=_("serve: port (default 8787; 0 picks a free one)"))
    p.add_argument(
        "--public", action="store_true", help=_("serve: listen on the classroom network (0.0.0.0 unless --host)")
    )
    p.add_argument("--db", help=_("serve/forget/rotate: the sqlite file (default <state dir>/classroom/classroom.db)"))
    p.add_argument(
        "--max-learners",
        type=int,
        default=MAX_LEARNERS,
        help=_("serve: learners the class takes (default {n})").format(n=MAX_LEARNERS),
    )
    p.add_argument(
        "--events-per-minute",
        type=float,
        default=EVENTS_PER_MINUTE,
        help=_("serve: events one learner may post a minute, with four minutes' worth at once (default {n})").format(
            n=EVENTS_PER_MINUTE
        ),
    )
    p.add_argument("--timeout", type=float, default=10.0, help=_("flush: seconds to wait for a busy sender"))
    p.add_argument("--json", action="store_true", help=_("status: as JSON"))
    p.set_defaults(func=command)


def _db(args: argparse.Namespace) -> Path:
    """The instructor's database: ``--db``, or the default (only the instructor's actions make its folder)."""
    return Path(args.db) if args.db else default_db()


def _usage(problem: str) -> UsageError:
    return UsageError("labkit classroom", problem)


def command(args: argparse.Namespace) -> ExitCode:
    """Run ``labkit classroom ACTION``; ``forget`` answers 1 when no learner has that name.

    Raises:
        UsageError: the action's arguments are missing or extra.
        ClassroomError: joining or talking to the server failed.
    """
    if args.action == "join":
        if len(args.args) != 2 or not args.name:
            raise _usage(_("join needs URL TOKEN --name NAME (the command your instructor gave you)"))
        url, token = args.args
    elif args.action == "forget":
        if len(args.args) != 1:
            raise _usage(_("forget needs the learner's NAME"))
        (name,) = args.args
    elif args.args:
        raise _usage(_("{action} takes no arguments").format(action=args.action))
    if args.action == "serve":
        from labkit.classroom.server import DEFAULT_PORT, serve  # reason: starlette adds ~25 ms to every labkit command

        if args.max_learners < 1 or args.events_per_minute <= 0:
            raise _usage(_("--max-learners and --events-per-minute must be positive"))
        port = DEFAULT_PORT if args.port is None else args.port
        serve(_db(args), args.host, port, args.public, args.max_learners, args.events_per_minute)
        return ExitCode.DONE
    if args.action == "rotate":
        store = Store(_db(args))
        try:
            join_token, instructor_token = store.rotate()
        finally:
            store.close()
        print(_("new join token:       {token}").format(token=join_token))
        print(_("new instructor token: {token}").format(token=instructor_token))
        print(_("the old tokens and every open instructor page stop working (in a running server within a second);"))
        print(
            _(
                "learners who joined run `labkit classroom join URL NEW_JOIN_TOKEN --name NAME` again and keep their name;"
            )
        )
        print(_("open the page again at URL/?token=NEW_INSTRUCTOR_TOKEN. Both tokens are shown only now."))
        return ExitCode.DONE
    if args.action == "join":
        cfg = client.join(url, token, args.name)
        print(
            _("joined {url} as {learner}: your checks and hints now go to the instructor's page too").format(
                url=cfg["url"], learner=cfg["learner"]
            )
        )
        return ExitCode.DONE
    if args.action == "leave":
        dropped = client.leave()
        if dropped:
            print(
                _("left the classroom ({n} queued result(s) dropped; your local progress record keeps them)").format(
                    n=dropped
                )
            )
        else:
            print(_("left the classroom"))
        return ExitCode.DONE
    if args.action == "forget":
        store = Store(_db(args))
        try:
            freed = store.forget(name)
        finally:
            store.close()
        print((_("{name!r} can join again") if freed else _("no learner named {name!r} has joined")).format(name=name))
        return ExitCode.DONE if freed else ExitCode.NOT_YET
    repaired = client.repair_queue()
    if repaired:
        print(f"labkit: {repaired}", file=sys.stderr)
    if args.action == "flush":
        sent = client.flush(timeout=args.timeout)
        print(_("sent {sent} result(s); {queued} still queued").format(sent=sent, queued=client.queued()))
        return ExitCode.DONE
    info = client.status()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    elif not info["joined"]:
        print(
            _("not in a classroom (join with: labkit classroom join URL TOKEN --name NAME); {n} queued").format(
                n=info["queued"]
            )
        )
    else:
        print(_("classroom: {url} ({server})").format(url=info["url"], server=info["server"]))
        print(_("learner:   {learner}").format(learner=info["learner"]))
        print(_("queued:    {n} result(s) waiting to be sent").format(n=info["queued"]))
        if info["rejected"]:
            print(
                _("rejected:  {n} result(s) the server refused (see {folder}/classroom-rejected.jsonl)").format(
                    n=info["rejected"], folder=info["state_dir"]
                )
            )
    return ExitCode.DONE
