"""``labkit classroom serve|join|leave|status|flush|forget``.

``labkit/cli.py`` registers these with ``add_parser(sub)``; ``python -m labkit.classroom``
runs them on their own.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.core.errors import LabkitError


def default_db() -> Path:
    """``state_dir()/classroom/classroom.db``: the instructor's results, kept across restarts."""
    from labkit.core.paths import state_dir

    return state_dir() / "classroom" / "classroom.db"


def _cmd(args: argparse.Namespace) -> int:
    from labkit.classroom import client

    if args.action == "serve":
        from labkit.classroom.server import DEFAULT_PORT, serve

        serve(Path(args.db) if args.db else default_db(), args.host, DEFAULT_PORT if args.port is None else args.port, args.public)
        return 0
    if args.action == "join":
        cfg = client.join(args.url, args.token, args.name)
        print(f"joined {cfg['url']} as {cfg['learner']}: your checks and hints now go to the instructor's page too")
        return 0
    if args.action == "leave":
        dropped = client.leave()
        extra = f" ({dropped} queued result(s) dropped; your local progress record keeps them)" if dropped else ""
        print(f"left the classroom{extra}")
        return 0
    if args.action == "flush":
        sent = client.flush(timeout=args.timeout)
        print(f"sent {sent} result(s); {client.queued()} still queued")
        return 0
    if args.action == "forget":
        from labkit.classroom.store import Store

        store = Store(Path(args.db) if args.db else default_db())
        try:
            freed = store.forget(args.name)
        finally:
            store.close()
        print(f"{args.name!r} can join again" if freed else f"no learner named {args.name!r} has joined")
        return 0 if freed else 1
    info = client.status()
    if args.json:
        print(json.dumps(info, indent=2, sort_keys=True))
    elif not info["joined"]:
        print(f"not in a classroom (join with: labkit classroom join URL TOKEN --name NAME); {info['queued']} queued")
    else:
        print(f"classroom: {info['url']} ({info['server']})")
        print(f"learner:   {info['learner']}")
        print(f"queued:    {info['queued']} result(s) waiting to be sent")
        if info["rejected"]:
            print(f"rejected:  {info['rejected']} result(s) the server refused (see {info['state_dir']}/classroom-rejected.jsonl)")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``classroom`` on labkit's sub-command parsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "classroom", help="a live view of learners' check results for the instructor; join one as a learner"
    )
    p.add_argument("action", choices=["serve", "join", "leave", "status", "flush", "forget"])
    p.add_argument("args", nargs="*", metavar="ARG", help="join URL TOKEN; forget NAME")
    p.add_argument("--name", help="join: your name, as the instructor sees it")
    p.add_argument("--host", help="serve: address to listen on (default 127.0.0.1; another needs --public)")
    p.add_argument("--port", type=int, help="serve: port (default 8787; 0 picks a free one)")
    p.add_argument("--public", action="store_true", help="serve: listen on the classroom network (0.0.0.0 unless --host)")
    p.add_argument("--db", help="serve/forget: the sqlite file (default <state dir>/classroom/classroom.db)")
    p.add_argument("--timeout", type=float, default=10.0, help="flush: seconds to wait for a busy sender")
    p.add_argument("--json", action="store_true", help="status: as JSON")
    p.set_defaults(func=_run, _parser=p)
    return p


def _run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args._parser
    if args.action == "join":
        if len(args.args) != 2 or not args.name:
            parser.error("join needs URL TOKEN --name NAME (the command your instructor gave you)")
        args.url, args.token = args.args
    elif args.action == "forget":
        if len(args.args) != 1:
            parser.error("forget needs the learner's NAME")
        args.name = args.args[0]
    elif args.args:
        parser.error(f"{args.action} takes no arguments")
    return _cmd(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``classroom`` on its own (``python -m labkit.classroom``), with labkit's exit codes."""
    parser = argparse.ArgumentParser(prog="labkit")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["classroom", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except LabkitError as e:
        print(f"labkit: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
