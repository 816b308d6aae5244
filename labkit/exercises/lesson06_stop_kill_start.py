"""Lesson 06: stop a container (SIGTERM, then SIGKILL), kill it, start and restart it.

``stop.graceful`` reads how ``graceful`` ended: the line its SIGTERM handler logs, its
exit code, and, when that is 137, the daemon's events to tell ``docker kill`` from a
``docker stop`` whose grace period ran out. ``kill.now`` and ``restart.web`` are defined
in :mod:`~labkit.exercises._lesson06_signals`, ``start.again`` in
:mod:`~labkit.exercises._lesson06_stopped`. The readers of a container's present and
past, :mod:`~labkit.exercises._lesson06_containers` and
:mod:`~labkit.exercises._lesson06_history`, serve lesson 07's exercises too.
"""

from __future__ import annotations

from typing import Any

from docker.models.containers import Container

from labkit.core import engine, wait
from labkit.core.i18n import N_, _
from labkit.exercises import _lesson06_containers as present
from labkit.exercises import _lesson06_history as past
from labkit.exercises import _lesson06_signals as signals
from labkit.exercises import _lesson06_stopped as stopped
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.exercises.machinery.runner import exercise_labels

LESSON = "06"
#: Seconds setup waits for a container to be ready.
READY_TIMEOUT = 20.0


# --- stop.graceful --------------------------------------------------------------------

GRACEFUL = "graceful"
GRACEFUL_READY = f"{GRACEFUL}: ready"
GRACEFUL_TERM = f"{GRACEFUL}: got SIGTERM"


def _setup_graceful(ctx: Context) -> dict[str, Any]:
    container = ctx.client.containers.run(
        "busybox",
        ["sh", "-c", present.signal_script(GRACEFUL)],
        name=GRACEFUL,
        detach=True,
        labels=exercise_labels(ctx.exercise),
    )
    # Until it logs "ready" its trap is not set, and a SIGTERM would be ignored.
    wait.log_line(container, GRACEFUL_READY, timeout=READY_TIMEOUT)
    return {"container": GRACEFUL}


def _killed(ctx: Context, container: Container, handler_ran: bool, evidence: dict[str, Any]) -> Verdict:
    """Exit code 137: SIGKILL ended it. Say who sent it, when the daemon's events still know."""
    if container.attrs.get("State", {}).get("OOMKilled"):
        return not_yet(
            _("{graceful} was killed by the kernel for running out of memory (exit code 137, OOMKilled).").format(
                graceful=GRACEFUL
            ),
            _('Nothing you typed did this: run `labkit.setup("stop.graceful")` again, and ask it to stop once more.'),
            **evidence,
        )
    if handler_ran:
        return not_yet(
            _("{graceful} got SIGTERM and began to clean up, but SIGKILL ended it first (exit code 137).").format(
                graceful=GRACEFUL
            ),
            _(
                "The grace period was too short for its handler (like `docker stop -t 0`). Run setup again "
                "and give it the default 10 seconds."
            ),
            **evidence,
        )
    signals = past.kill_signals(ctx.client, container)
    evidence["signals"] = "unknown" if signals is None else ", ".join(map(str, signals)) or "none"
    again = _('Run `labkit.setup("stop.graceful")` again, and this time ask it to stop.')
    if signals is not None and signals and signals[0] == 9:
        return not_yet(
            _(
                "{graceful} was killed: `docker kill` sent SIGKILL at once (exit code 137), so its SIGTERM "
                "handler never ran."
            ).format(graceful=GRACEFUL),
            _("`docker kill` is for a container that will not stop. {again}").format(again=again),
            **evidence,
        )
    if signals is not None and 15 in signals:
        return not_yet(
            _(
                "{graceful} was sent SIGTERM and then SIGKILL before its handler ran (exit code 137): a `docker "
                "stop` with a grace period too short, like `-t 0`."
            ).format(graceful=GRACEFUL),
            _("`docker stop` waits -t seconds (10 by default) between the two signals. {again}").format(again=again),
            **evidence,
        )
    return not_yet(
        _(
            "{graceful} was ended by SIGKILL (exit code 137) before its SIGTERM handler ran: `docker kill`, "
            "or `docker stop -t 0`."
        ).format(graceful=GRACEFUL),
        _("`docker kill` sends SIGKILL at once; `docker stop` sends SIGTERM first and waits. {again}").format(
            again=again
        ),
        **evidence,
    )


def _graceful(ctx: Context) -> Verdict:
    container = engine.find_container(GRACEFUL)
    if container is None or container.name != GRACEFUL:
        return not_yet(
            _("There is no container named {graceful}: it was removed (or setup never ran).").format(graceful=GRACEFUL),
            _(
                'Run `labkit.setup("stop.graceful")` again: it starts a new {graceful}. Stop it, but do not remove it.'
            ).format(graceful=GRACEFUL),
        )
    if container.labels.get("labkit.exercise") != "stop.graceful":
        return not_yet(
            _("A container named {graceful} exists, but it is not the one setup started.").format(graceful=GRACEFUL),
            _('Run `labkit.setup("stop.graceful")`: it replaces this {graceful} with the exercise\'s own.').format(
                graceful=GRACEFUL
            ),
        )
    status = present.status(container)
    lines = past.log_lines(container)
    runs = None if lines is None else sum(GRACEFUL_READY in line for line in lines)
    latest = None if lines is None else past.last_run(lines, GRACEFUL_READY)
    handler_ran = bool(latest) and any(GRACEFUL_TERM in line for line in latest or [])
    evidence: dict[str, Any] = {"status": status}
    if status == "running":
        if runs is not None and runs > 1:
            return not_yet(
                _("{graceful} stopped, but it was started again and runs now (it has started {runs} times).").format(
                    graceful=GRACEFUL, runs=runs
                ),
                _("`docker restart` (or `docker start`) started it again; stop it once more and leave it stopped."),
                **evidence,
            )
        return not_yet(
            _("{graceful} is still running.").format(graceful=GRACEFUL),
            _(
                "Which command asks a container to stop (SIGTERM) rather than killing it? `docker logs "
                "{graceful}` shows what it does when asked."
            ).format(graceful=GRACEFUL),
            **evidence,
        )
    if status == "paused":
        return not_yet(
            _("{graceful} is paused, not stopped: its process is frozen and cannot answer a signal.").format(
                graceful=GRACEFUL
            ),
            _(
                "Let it run again first (`docker unpause {graceful}`): only a running process can handle SIGTERM."
            ).format(graceful=GRACEFUL),
            **evidence,
        )
    if status != "exited":
        return not_yet(
            _("{graceful} is {status}; the exercise wants it stopped.").format(graceful=GRACEFUL, status=status),
            _("Wait a moment and check again."),
            **evidence,
        )
    code = present.exit_code(container)
    evidence["exit_code"] = code
    if code == 143 and (handler_ran or lines is None):
        return passed(
            _("{graceful} received SIGTERM, its handler logged it and exited with 143 (128 + 15).").format(
                graceful=GRACEFUL
            ),
            **evidence,
        )
    if code == 137:
        return _killed(ctx, container, handler_ran, evidence)
    return not_yet(
        _("{graceful} exited with code {code}, not through its SIGTERM handler.").format(graceful=GRACEFUL, code=code),
        _('Run `labkit.setup("stop.graceful")` again, then ask it to stop, without forcing it.'),
        **evidence,
    )


STOP_GRACEFUL = register(
    Exercise(
        id="stop.graceful",
        lesson=LESSON,
        title=N_("Stop a container gracefully"),
        prompt=N_("Stop the running container graceful so that it exits through its SIGTERM handler."),
        check=_graceful,
        hints=(
            (
                N_(
                    "Look at its log first: `docker logs graceful`. Which command asks a container to stop, rather "
                    "than killing it?"
                )
            ),
            N_("`docker stop NAME` sends SIGTERM, waits the grace period, and only then sends SIGKILL."),
            N_("Type: docker stop graceful"),
        ),
        solution=(f"docker stop {GRACEFUL}",),
        setup=_setup_graceful,
        names=(GRACEFUL,),
    )
)


# --- kill.now, start.again, restart.web (defined beside this module) ------------------

KILL_NOW = register(signals.KILL_NOW)
START_AGAIN = register(stopped.START_AGAIN)
RESTART_WEB = register(signals.RESTART_WEB)
