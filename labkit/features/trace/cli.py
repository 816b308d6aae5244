"""``labkit trace start|stop|show|host``, and the hidden ``labkit trace serve`` the background proxy runs."""

from __future__ import annotations

import argparse
import json
import signal
from dataclasses import asdict
from pathlib import Path
from typing import Any

from labkit.core.commands import Subcommands
from labkit.core.errors import ExitCode, LabkitError, UsageError
from labkit.features.trace.log import load
from labkit.features.trace.process import start, status, stop
from labkit.features.trace.proxy import Proxy
from labkit.features.trace.views import Trace

ACTIONS = ("start", "stop", "show", "host")


def register(subcommands: Subcommands) -> None:
    """Add ``trace`` to labkit's sub-commands."""
    p = subcommands.add_parser(
        "trace", help="a recording proxy in front of the daemon: watch the API calls the CLI makes"
    )
    # `serve` is what the background process runs (`python -m labkit trace serve …`): not for people.
    p.add_argument("action", choices=[*ACTIONS, "serve"], metavar="{" + ",".join(ACTIONS) + "}")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--socket", help="start: the unix socket to listen on (default: <state dir>/trace/docker.sock)")
    where.add_argument("--tcp", type=int, metavar="PORT", help="start: listen on 127.0.0.1:PORT instead")
    p.add_argument("--json", action="store_true")
    p.add_argument("--raw", action="store_true", help="show: real paths, times and connection numbers")
    for option in ("--listen", "--upstream", "--log"):
        p.add_argument(option, help=argparse.SUPPRESS)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> ExitCode:
    """Run ``labkit trace ACTION`` from parsed arguments.

    Raises:
        LabkitError: the proxy could not start, or none runs for ``host``.
        UsageError: ``serve`` without ``--listen``, ``--upstream`` and ``--log``.
    """
    if args.action == "serve":
        if not (args.listen and args.upstream and args.log):
            raise UsageError("labkit trace", "serve needs --listen, --upstream and --log")
        return _serve(args.listen, args.upstream, args.log)
    if args.action == "start":
        result = start(args.socket, args.tcp)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        else:
            print(result)
            print(f"  try: DOCKER_HOST={result.docker_host} docker run --rm hello-world")
        return ExitCode.DONE
    if args.action == "stop":
        print("trace proxy stopped" if stop() else "no trace proxy started by labkit was running")
        return ExitCode.DONE
    if args.action == "host":
        current = status()
        if not current.running:
            raise LabkitError("no trace proxy is running", "start one: labkit trace start")
        print(current.docker_host)
        return ExitCode.DONE
    calls = load()
    if args.json:
        print(json.dumps([asdict(c) for c in calls], indent=2, sort_keys=True))
    else:
        print(Trace(calls, stable=not args.raw))
    return ExitCode.DONE


def _serve(listen: str, upstream: str, log: str) -> ExitCode:
    """The background process: bind, then relay until SIGTERM."""
    proxy = Proxy(listen, upstream, Path(log))
    proxy.bind()

    def on_term(signum: int, frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # a closed terminal is no reason to stop recording
    try:
        proxy.serve_forever()
    finally:
        proxy.close()
    return ExitCode.DONE
