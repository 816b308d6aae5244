"""``labkit hub up|down|status|start|stop|password|grades``: a classroom on one server (JupyterHub).

Registered on ``labkit`` by :mod:`labkit.cli`; the actions are :mod:`hub_admin`'s.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from labkit.classroom import hub_admin
from labkit.classroom.hub_config import Settings, state_folder
from labkit.core.commands import Subcommands
from labkit.core.errors import ExitCode, UsageError

ACTIONS = ["up", "down", "status", "start", "stop", "password", "grades"]


def register(subcommands: Subcommands) -> None:
    """Add ``hub`` to labkit's sub-commands."""
    p = subcommands.add_parser(
        "hub",
        help="a classroom on this server: JupyterHub gives each learner a lab and a Docker engine of their own",
    )
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("names", nargs="*", metavar="NAME", help="start/stop/password: learners")
    p.add_argument("--all", action="store_true", help="start/stop: every learner")
    p.add_argument("--roster", help="up: a CSV file with a `username` column; its new names get accounts")
    p.add_argument(
        "--first-use", action="store_true", help="up: new learners set their password at first login (not issued)"
    )
    p.add_argument("--admin", default="instructor", help="up: the instructor's account name (default instructor)")
    p.add_argument("--port", type=int, default=8000, help="up: the port learners open (default 8000)")
    p.add_argument(
        "--public", action="store_true", help="up: serve the classroom network (0.0.0.0), not only this machine"
    )
    p.add_argument("--cert", help="up: a TLS certificate (PEM) to serve HTTPS; with --key")
    p.add_argument("--key", help="up: the certificate's private key (PEM)")
    p.add_argument("--idle-timeout", type=int, default=3600, help="up: stop a lab idle this many seconds (0: never)")
    p.add_argument("--memory", default="2G", help="up: memory limit per learner, e.g. 2G (`none`: no limit)")
    p.add_argument("--pids", default="2048", help="up: process limit per learner (`none`: no limit)")
    p.add_argument("--purge", action="store_true", help="down: also delete learners' users, homes and the hub's state")
    p.add_argument("--state", help="the hub's state folder (default $LABKIT_HUB_STATE or /var/lib/labkit/hub)")
    p.add_argument("--json", action="store_true", help="status: as JSON")
    p.add_argument("--format", choices=["csv", "gradescope"], default="csv", help="grades: the gradebook's format")
    p.set_defaults(func=command)


def _usage(problem: str) -> UsageError:
    return UsageError("labkit hub", problem)


def _limit(value: str, what: str) -> str | None:
    if value.lower() in ("none", "0", ""):
        return None
    if what == "pids" and not value.isdigit():
        raise _usage(f"--pids takes a number or `none`, not {value!r}")
    return value


def _settings(args: argparse.Namespace) -> Settings:
    if bool(args.cert) != bool(args.key):
        raise _usage("--cert and --key go together")
    for name in ("cert", "key"):
        value = getattr(args, name)
        if value and not Path(value).is_file():
            raise _usage(f"--{name} {value}: no such file")
    pids = _limit(args.pids, "pids")
    return Settings(
        port=args.port,
        ip="0.0.0.0" if args.public else "127.0.0.1",
        admin=args.admin,
        ssl_cert=str(Path(args.cert).resolve()) if args.cert else None,
        ssl_key=str(Path(args.key).resolve()) if args.key else None,
        idle_timeout=max(0, args.idle_timeout),
        memory=_limit(args.memory, "memory"),
        pids=int(pids) if pids else None,
    )


def _course_images() -> list[str]:
    from labkit.features import images  # reason: only `up` needs the image catalog and its daemon calls

    images.ensure()
    return [entry.name for entry in images.CATALOG]


def command(args: argparse.Namespace) -> ExitCode:
    """Run ``labkit hub ACTION``."""
    folder = state_folder(args.state)
    if args.action in ("up", "down", "status", "grades") and args.names:
        raise _usage(f"{args.action} takes no names")
    if args.action == "up":
        report = hub_admin.up(
            folder,
            _settings(args),
            Path(args.roster) if args.roster else None,
            "first-use" if args.first_use else "issued",
            images=_course_images,
        )
        if report.already_running:
            print(f"hub: already running at {report.url} (settings unchanged; `labkit hub down` to change them)")
        else:
            print(f"hub: up at {report.url} in {report.seconds:.1f} s (state: {folder})")
        for line in report.refused:
            print(f"hub: roster {line}", file=sys.stderr)
        if report.added:
            print(f"hub: {len(report.added)} learner account(s) added")
        if report.passwords:
            print(f"hub: new passwords are in {report.passwords} (root only): give each learner theirs")
        if args.public and not args.cert:
            print(
                "hub: plain HTTP on the classroom network: passwords and session cookies cross it unencrypted; "
                "give --cert and --key for HTTPS",
                file=sys.stderr,
            )
        return ExitCode.DONE
    if args.action == "down":
        done = hub_admin.down(folder, purge=args.purge)
        print(
            f"hub: down ({len(done['labs_stopped'])} lab(s) stopped, {done['engines_swept']} engine(s) swept"
            + (", learners' users and the hub's state removed)" if args.purge else ")")
        )
        return ExitCode.DONE
    if args.action == "status":
        info = hub_admin.status(folder)
        if args.json:
            print(json.dumps(info, indent=2, sort_keys=True))
            return ExitCode.DONE
        print(f"hub: {'running at ' + info['url'] if info['running'] else 'not running'} (state: {info['state']})")
        limits = info["limits"]
        enforced = limits["enforced"]
        where = f"cgroup {enforced['cgroup']}" if enforced["memory"] else "not enforceable on this machine"
        print(
            f"limits per learner: memory {limits['memory'] or 'none'}, processes {limits['pids'] or 'none'} ({where}); "
            + (f"idle labs stop after {limits['idle_timeout']} s" if limits["idle_timeout"] else "idle labs never stop")
        )
        for row in info["learners"]:
            print(f"  {row['name']:<20} lab {row['server']:<8} engine {row['engine']:<8} {row['docker_host'] or ''}")
        return ExitCode.DONE
    if args.action in ("start", "stop"):
        if args.all == bool(args.names):
            raise _usage(f"{args.action} takes learners' names or --all (not both)")
        if args.action == "start":
            took = hub_admin.start(folder, args.names, every=args.all)
            for name, seconds in took.items():
                print(f"hub: {name}'s lab ready ({seconds:.1f} s)")
        else:
            stopped = hub_admin.stop(folder, args.names, every=args.all)
            print(f"hub: {len(stopped)} lab(s) stopped" + (f": {', '.join(stopped)}" if stopped else ""))
        return ExitCode.DONE
    if args.action == "password":
        if len(args.names) != 1:
            raise _usage("password takes one learner's NAME")
        print(hub_admin.password(folder, args.names[0]))
        return ExitCode.DONE
    from labkit.classroom import hub_records  # reason: the records are only needed here

    sys.stdout.write(hub_records.grades(folder / "grader", args.format))
    return ExitCode.DONE
