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
from labkit.core import i18n
from labkit.core.commands import Subcommands
from labkit.core.errors import ExitCode, UsageError
from labkit.core.i18n import _

ACTIONS = ["up", "down", "status", "start", "stop", "password", "grades"]


def register(subcommands: Subcommands) -> None:
    """Add ``hub`` to labkit's sub-commands."""
    p = subcommands.add_parser(
        "hub",
        help=_("a classroom on this server: JupyterHub gives each learner a lab and a Docker engine of their own"),
    )
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("names", nargs="*", metavar="NAME", help=_("start/stop/password: learners"))
    p.add_argument("--all", action="store_true", help=_("start/stop: every learner"))
    p.add_argument("--roster", help=_("up: a CSV file with a `username` column; its new names get accounts"))
    p.add_argument(
        "--first-use", action="store_true", help=_("up: new learners set their password at first login (not issued)")
    )
    p.add_argument("--admin", default="instructor", help=_("up: the instructor's account name (default instructor)"))
    p.add_argument("--port", type=int, default=8000, help=_("up: the port learners open (default 8000)"))
    p.add_argument(
        "--public", action="store_true", help=_("up: serve the classroom network (0.0.0.0), not only this machine")
    )
    p.add_argument("--cert", help=_("up: a TLS certificate (PEM) to serve HTTPS; with --key"))
    p.add_argument("--key", help=_("up: the certificate's private key (PEM)"))
    p.add_argument("--idle-timeout", type=int, default=3600, help=_("up: stop a lab idle this many seconds (0: never)"))
    p.add_argument("--memory", default="2G", help=_("up: memory limit per learner, e.g. 2G (`none`: no limit)"))
    p.add_argument("--pids", default="2048", help=_("up: process limit per learner (`none`: no limit)"))
    p.add_argument(
        "--lang",
        choices=["en", "zh_CN"],
        help=_("up: the course's language in every lab (default: LABKIT_LANG, else this machine's locale)"),
    )
    p.add_argument(
        "--purge", action="store_true", help=_("down: also delete learners' users, homes and the hub's state")
    )
    p.add_argument("--state", help=_("the hub's state folder (default $LABKIT_HUB_STATE or /var/lib/labkit/hub)"))
    p.add_argument("--json", action="store_true", help=_("status: as JSON"))
    p.add_argument("--format", choices=["csv", "gradescope"], default="csv", help=_("grades: the gradebook's format"))
    p.set_defaults(func=command)


def _usage(problem: str) -> UsageError:
    return UsageError("labkit hub", problem)


def _limit(value: str, what: str) -> str | None:
    if value.lower() in ("none", "0", ""):
        return None
    if what == "pids" and not value.isdigit():
        raise _usage(_("--pids takes a number or `none`, not {value!r}").format(value=value))
    return value


def _settings(args: argparse.Namespace) -> Settings:
    if bool(args.cert) != bool(args.key):
        raise _usage(_("--cert and --key go together"))
    for name in ("cert", "key"):
        value = getattr(args, name)
        if value and not Path(value).is_file():
            raise _usage(_("--{option} {value}: no such file").format(option=name, value=value))
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
        lang=args.lang or i18n.language(),
    )


def _course_images() -> list[str]:
    from labkit.features import images  # reason: only `up` needs the image catalog and its daemon calls

    images.ensure()
    return [entry.name for entry in images.CATALOG]


def command(args: argparse.Namespace) -> ExitCode:
    """Run ``labkit hub ACTION``."""
    folder = state_folder(args.state)
    if args.action in ("up", "down", "status", "grades") and args.names:
        raise _usage(_("{action} takes no names").format(action=args.action))
    if args.action == "up":
        report = hub_admin.up(
            folder,
            _settings(args),
            Path(args.roster) if args.roster else None,
            "first-use" if args.first_use else "issued",
            images=_course_images,
        )
        if report.already_running:
            print(
                _("hub: already running at {url} (settings unchanged; `labkit hub down` to change them)").format(
                    url=report.url
                )
            )
        else:
            print(
                _("hub: up at {url} in {seconds:.1f} s (state: {folder})").format(
                    url=report.url, seconds=report.seconds, folder=folder
                )
            )
        for line in report.refused:
            print(_("hub: roster {line}").format(line=line), file=sys.stderr)
        if report.added:
            print(_("hub: {n} learner account(s) added").format(n=len(report.added)))
        if report.passwords:
            print(
                _("hub: new passwords are in {path} (root only): give each learner theirs").format(
                    path=report.passwords
                )
            )
        if args.public and not args.cert:
            print(
                _(
                    "hub: plain HTTP on the classroom network: passwords and session cookies cross it unencrypted; "
                    "give --cert and --key for HTTPS"
                ),
                file=sys.stderr,
            )
        return ExitCode.DONE
    if args.action == "down":
        done = hub_admin.down(folder, purge=args.purge)
        if args.purge:
            line = _(
                "hub: down ({labs} lab(s) stopped, {engines} engine(s) swept, learners' users and the hub's state removed)"
            )
        else:
            line = _("hub: down ({labs} lab(s) stopped, {engines} engine(s) swept)")
        print(line.format(labs=len(done["labs_stopped"]), engines=done["engines_swept"]))
        return ExitCode.DONE
    if args.action == "status":
        info = hub_admin.status(folder)
        if args.json:
            print(json.dumps(info, indent=2, sort_keys=True))
            return ExitCode.DONE
        if info["running"]:
            print(_("hub: running at {url} (state: {state})").format(url=info["url"], state=info["state"]))
        else:
            print(_("hub: not running (state: {state})").format(state=info["state"]))
        limits = info["limits"]
        enforced = limits["enforced"]
        where = (
            _("cgroup {cgroup}").format(cgroup=enforced["cgroup"])
            if enforced["memory"]
            else _("not enforceable on this machine")
        )
        if limits["idle_timeout"]:
            line = _("limits per learner: memory {memory}, processes {pids} ({where}); idle labs stop after {idle} s")
        else:
            line = _("limits per learner: memory {memory}, processes {pids} ({where}); idle labs never stop")
        print(
            line.format(
                memory=limits["memory"] or _("none"),
                pids=limits["pids"] or _("none"),
                where=where,
                idle=limits["idle_timeout"],
            )
        )
        for row in info["learners"]:
            print(
                _("  {name:<20} lab {server:<8} engine {engine:<8} {host}").format(
                    name=row["name"], server=row["server"], engine=row["engine"], host=row["docker_host"] or ""
                )
            )
        return ExitCode.DONE
    if args.action in ("start", "stop"):
        if args.all == bool(args.names):
            raise _usage(_("{action} takes learners' names or --all (not both)").format(action=args.action))
        if args.action == "start":
            took = hub_admin.start(folder, args.names, every=args.all)
            for name, seconds in took.items():
                print(_("hub: {name}'s lab ready ({seconds:.1f} s)").format(name=name, seconds=seconds))
        else:
            stopped = hub_admin.stop(folder, args.names, every=args.all)
            if stopped:
                print(_("hub: {n} lab(s) stopped: {names}").format(n=len(stopped), names=", ".join(stopped)))
            else:
                print(_("hub: {n} lab(s) stopped").format(n=0))
        return ExitCode.DONE
    if args.action == "password":
        if len(args.names) != 1:
            raise _usage(_("password takes one learner's NAME"))
        print(hub_admin.password(folder, args.names[0]))
        return ExitCode.DONE
    from labkit.classroom import hub_records  # reason: the records are only needed here

    sys.stdout.write(hub_records.grades(folder / "grader", args.format))
    return ExitCode.DONE
