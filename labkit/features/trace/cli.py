"""``labkit trace start|stop|show|host`` and ``python -m labkit.trace``, and the ``serve`` the background process runs."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from labkit.core.errors import LabkitError
from labkit.features.trace.log import load
from labkit.features.trace.process import start, status, stop
from labkit.features.trace.proxy import Proxy
from labkit.features.trace.views import Trace


def _serve(listen: str, upstream: str, log: str) -> int:
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
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m labkit.trace start|stop|show|host|serve``: the same as ``labkit trace``."""
    parser = argparse.ArgumentParser(prog="labkit trace", description="a recording proxy in front of the Docker daemon")
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("start", help="start the proxy in the background (a new, empty trace)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--socket", help="unix socket to listen on (default: <state dir>/trace/docker.sock)")
    where.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT instead")
    p.add_argument("--json", action="store_true")
    sub.add_parser("stop", help="stop the proxy and remove its socket (the trace stays)")
    p = sub.add_parser("show", help="the calls recorded so far")
    p.add_argument("--json", action="store_true")
    p.add_argument("--raw", action="store_true", help="real ids, versions and connection numbers")
    sub.add_parser("host", help="print the DOCKER_HOST value of the running proxy")
    p = sub.add_parser("serve", help=argparse.SUPPRESS)
    p.add_argument("--listen", required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--log", required=True)
    args = parser.parse_args(argv)
    try:
        return command(args)
    except LabkitError as e:
        print(f"labkit: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130


def command(args: argparse.Namespace) -> int:
    """Run ``labkit trace ACTION`` from parsed arguments (``action``, and ``socket``, ``tcp``, ``json``, ``raw`` when given).

    Raises:
        LabkitError: the proxy could not start, or none runs for ``host``.
    """
    args.socket, args.tcp = getattr(args, "socket", None), getattr(args, "tcp", None)
    args.json, args.raw = getattr(args, "json", False), getattr(args, "raw", False)
    if args.action == "serve":
        return _serve(args.listen, args.upstream, args.log)
    if args.action == "start":
        result = start(args.socket, args.tcp)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        else:
            print(result)
            print(f"  try: DOCKER_HOST={result.docker_host} docker run --rm hello-world")
        return 0
    if args.action == "stop":
        print("trace proxy stopped" if stop() else "no trace proxy started by labkit was running")
        return 0
    if args.action == "host":
        current = status()
        if not current.running:
            raise LabkitError("no trace proxy is running", "start one: labkit trace start")
        print(current.docker_host)
        return 0
    calls = load()
    if args.json:
        print(json.dumps([asdict(c) for c in calls], indent=2, sort_keys=True))
    else:
        print(Trace(calls, stable=not args.raw))
    return 0
