"""``labkit trace start|stop|show|host|env``, and the hidden ``labkit trace serve`` the background proxy runs."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from labkit.core.commands import Subcommands
from labkit.core.errors import ExitCode, LabkitError, UsageError
from labkit.core.i18n import _
from labkit.features.trace.log import load
from labkit.features.trace.process import start, status, stop
from labkit.features.trace.proxy import Proxy
from labkit.features.trace.views import Trace

ACTIONS = ("start", "stop", "show", "host", "env")


def register(subcommands: Subcommands) -> None:
    """Add ``trace`` to labkit's sub-commands."""
    p = subcommands.add_parser(
        "trace", help=_("a recording proxy in front of the daemon: watch the API calls the CLI makes")
    )
    # `serve` is what the background process runs (`python -m labkit trace serve …`): not for people.
    p.add_argument("action", choices=[*ACTIONS, "serve"], metavar="{" + ",".join(ACTIONS) + "}")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--socket", help=_("start: the unix socket to listen on (default: <state dir>/trace/docker.sock)")
    )
    where.add_argument(
        "--tcp",
        type=int,
        metavar="PORT",
        help=_("start: listen on 127.0.0.1:PORT instead, with TLS and a client certificate"),
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--raw", action="store_true", help=_("show: real paths, times and connection numbers"))
    for option in ("--listen", "--upstream", "--log", "--tls"):
        p.add_argument(option, help=argparse.SUPPRESS)
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> ExitCode:
    """Run ``labkit trace ACTION`` from parsed arguments.

    Raises:
        LabkitError: the proxy could not start, or none runs for ``host`` and ``env``.
        UsageError: ``serve`` without ``--listen``, ``--upstream`` and ``--log``.
    """
    if args.action == "serve":
        if not (args.listen and args.upstream and args.log):
            raise UsageError("labkit trace", _("serve needs --listen, --upstream and --log"))
        return _serve(args.listen, args.upstream, args.log, args.tls)
    if args.action == "start":
        result = start(args.socket, args.tcp)
        if args.json:
            print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        else:
            print(result)
            print(_("  try: {env} docker run --rm hello-world").format(env=result.shell_env))
            if result.cert_path:
                print(_('  or, for every command in this shell: eval "$(labkit trace env)"'))
        return ExitCode.DONE
    if args.action == "stop":
        print(_("trace proxy stopped") if stop() else _("no trace proxy started by labkit was running"))
        return ExitCode.DONE
    if args.action in ("host", "env"):
        current = status()
        if not current.running:
            raise LabkitError(_("no trace proxy is running"), _("start one: labkit trace start"))
        if args.action == "env":
            for name, value in current.env.items():
                print(f"export {name}={shlex.quote(value)}")
        else:
            print(current.docker_host)
            if current.cert_path:  # the address alone is refused: say what else the CLI needs
                print(
                    _(
                        "labkit: this proxy also needs DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={path} "
                        '(all three: eval "$(labkit trace env)")'
                    ).format(path=shlex.quote(current.cert_path)),
                    file=sys.stderr,
                )
        return ExitCode.DONE
    calls = load()
    if args.json:
        print(json.dumps([asdict(c) for c in calls], indent=2, sort_keys=True))
    else:
        print(Trace(calls, stable=not args.raw))
    return ExitCode.DONE


def _serve(listen: str, upstream: str, log: str, tls: str | None) -> ExitCode:
    """The background process: bind, then relay until SIGTERM."""
    proxy = Proxy(listen, upstream, Path(log), Path(tls) if tls else None)
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
