"""Lesson 06's ``kill.now`` and ``restart.web``: how a container's process ended and started, from events.

``kill.now``
    Setup runs ``holdout``, whose PID 1 ignores SIGTERM. The learner kills it. It passes
    when it exited with 137 and the daemon's events since setup made it hold a ``kill``
    with signal 9 and no ``stop``. ``docker stop`` ends it too, with the same 137, but only
    after sending SIGTERM and waiting out the grace period (10 s): named as such, with the
    wait it took. Also named: ``docker kill -s TERM`` (still running), ``rm -f`` (gone),
    a new container under the name, paused, killed from outside Docker, out of memory.

``restart.web``
    Setup runs ``webby`` (labkit/hello-dock) and reports when it started. It passes when
    the same container runs a process started after that (``State.StartedAt`` moved on).
    ``docker restart`` and ``docker stop`` + ``docker start`` are both accepted: restart
    *is* a stop (SIGTERM, grace period, SIGKILL) followed by a start, and the container is
    left in the very same state; rejecting the two-step way would teach that it is wrong.
    The pass message names which one it was. Named near-misses: stopped and not started
    again, killed (SIGKILL, no graceful stop) and started, paused and unpaused (the process
    was frozen, never restarted), a new container under the name, nothing done yet.

The daemon keeps its last 256 events only: when they no longer reach back to setup, a
check says it cannot tell rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from labkit.core import engine, fmt, wait
from labkit.core.i18n import N_, _
from labkit.exercises import _lesson06_containers as present
from labkit.exercises import _lesson06_history as past
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.exercises.machinery.runner import exercise_labels

LESSON = "06"
READY_TIMEOUT = 20.0
SIGKILL, SIGTERM = 9, 15


@dataclass(frozen=True)
class Event:
    """One daemon event for a container: its action, the signal of a ``kill``, and when."""

    action: str
    signal: int | None = None
    at: float = 0.0


@dataclass(frozen=True)
class Life:
    """What the daemon shows of a container setup made: its state now and its events since.

    Attributes:
        exists: a container of that name exists.
        ours: it is the one setup made (the exercise's label, and setup's id when one was recorded).
        status: ``running``, ``exited``, ``paused``…
        exit_code: the main process's exit code once it ended.
        oom: the kernel killed it for memory.
        started_at: ``State.StartedAt`` as the daemon writes it.
        events: its events since it was created, oldest first; ``None`` when the daemon's
            event buffer no longer reaches back to its creation.
        removed: for a missing container, how the last one of that name went (``"stopped"``
            after a kill, ``"ended"``), from the daemon's events; ``None`` when unknown.
    """

    exists: bool
    ours: bool = False
    status: str = ""
    exit_code: int = 0
    oom: bool = False
    started_at: str = ""
    events: tuple[Event, ...] | None = None
    removed: str | None = None

    def actions(self) -> list[str]:
        return [e.action for e in self.events or ()]

    def signals(self) -> list[int]:
        return [e.signal for e in self.events or () if e.action == "kill" and e.signal is not None]


def _event(raw: dict[str, Any]) -> Event:
    attributes = (raw.get("Actor") or {}).get("Attributes") or {}
    signal = str(attributes.get("signal", ""))
    nanos = raw.get("timeNano")
    at = int(nanos) / 1e9 if isinstance(nanos, int) else float(raw.get("time") or 0)
    action = str(raw.get("Action") or raw.get("status") or "")
    return Event(action.split(":", 1)[0], int(signal) if signal.isdigit() else None, at)


def history(client: docker.DockerClient, container: Any) -> tuple[Event, ...] | None:
    """A container's events since its creation; ``None`` when the buffer no longer holds the ``create``."""
    created = fmt.timestamp(container.attrs.get("Created"))
    if created is None:
        return None
    found = past.events(client, str(container.id), created - 1.0)
    if found is None:
        return None
    events = tuple(_event(raw) for raw in found)
    return events if any(e.action == "create" for e in events) else None


def gather(client: docker.DockerClient, name: str, exercise_id: str, setup_id: str | None = None) -> Life:
    """Read a :class:`Life` for the container ``name`` that setup of ``exercise_id`` made."""
    container = engine.find_container(name)
    if container is None or container.name != name:
        return Life(exists=False, removed=past.recent_end(client, name))
    ours = container.labels.get("labkit.exercise") == exercise_id
    if setup_id:
        ours = ours and str(container.id).startswith(setup_id)
    state = container.attrs.get("State", {})
    return Life(
        exists=True,
        ours=ours,
        status=present.status(container),
        exit_code=present.exit_code(container),
        oom=bool(state.get("OOMKilled")),
        started_at=str(state.get("StartedAt") or ""),
        events=history(client, container) if ours else None,
    )


def _after_setup_only(exercise_id: str) -> str:
    return _('Run `labkit.setup("{exercise_id}")` again: it makes a new one.').format(exercise_id=exercise_id)


# --- kill.now -------------------------------------------------------------------------

HOLDOUT = "holdout"
HOLDOUT_READY = f"{HOLDOUT}: ready, and ignoring SIGTERM"
#: PID 1 ignores SIGTERM on purpose (``trap '' TERM``), and sleeps in the background so nothing else runs.
HOLDOUT_SCRIPT = f"trap '' TERM; echo '{HOLDOUT_READY}'; while :; do sleep 3600 & wait $!; done"


def _setup_kill(ctx: Context) -> dict[str, Any]:
    container = ctx.client.containers.run(
        "busybox", ["sh", "-c", HOLDOUT_SCRIPT], name=HOLDOUT, detach=True, labels=exercise_labels(ctx.exercise)
    )
    wait.log_line(container, HOLDOUT_READY, timeout=READY_TIMEOUT)  # its trap is set once it logged this
    return {"container": HOLDOUT}


def _grace(life: Life) -> str:
    """``", waited 10 s"``: the time between a stop's SIGTERM and its SIGKILL, when the events show both."""
    events = life.events or ()
    term = next((e.at for e in events if e.action == "kill" and e.signal == SIGTERM), None)
    kill = next((e.at for e in events if e.action == "kill" and e.signal == SIGKILL), None)
    if term is None or kill is None or kill < term:
        return ""
    return _(", waited {seconds:.0f} s").format(seconds=kill - term)


def kill_verdict(life: Life) -> Verdict:
    """Judge ``kill.now`` from what the daemon showed (pure: unit-tested without a daemon)."""
    if not life.exists:
        if life.removed == "stopped":
            return not_yet(
                _(
                    "There is no container named {holdout} any more: it was killed and removed (that is `docker rm "
                    "-f`)."
                ).format(holdout=HOLDOUT),
                _("The exercise wants it killed but kept, so its exit code can be read. {again}").format(
                    again=_after_setup_only("kill.now")
                ),
            )
        return not_yet(
            _("There is no container named {holdout}: setup never ran, or it was removed.").format(holdout=HOLDOUT),
            _after_setup_only("kill.now"),
        )
    if not life.ours:
        return not_yet(
            _("A container named {holdout} exists, but it is not the one setup started.").format(holdout=HOLDOUT),
            _("{again} Then end that one.").format(again=_after_setup_only("kill.now")),
        )
    evidence: dict[str, Any] = {"status": life.status}
    sent = [s for s in life.signals() if s != SIGKILL]
    if life.status == "running":
        if life.actions().count("start") > 1:
            return not_yet(
                _("{holdout} ended, but it was started again and runs now.").format(holdout=HOLDOUT),
                _("Leave it stopped after you end it: `docker restart` and `docker start` bring it back."),
                **evidence,
            )
        if sent:
            return not_yet(
                _("{holdout} is still running: it was sent signal {sent}, and it ignores {value}.").format(
                    holdout=HOLDOUT, sent=sent[-1], value="SIGTERM" if sent[-1] == SIGTERM else _("that signal")
                ),
                _(
                    "Which signal can no process catch or ignore? `docker kill` sends that one unless -s says otherwise."
                ),
                signals=", ".join(map(str, sent)),
                **evidence,
            )
        return not_yet(
            _("{holdout} is still running.").format(holdout=HOLDOUT),
            _(
                "`docker logs {holdout}` says what it does with SIGTERM. Which command ends a container without asking?"
            ).format(holdout=HOLDOUT),
            **evidence,
        )
    if life.status == "paused":
        return not_yet(
            _("{holdout} is paused, not ended: its process is frozen.").format(holdout=HOLDOUT),
            _("Unpause it first (`docker unpause`), or kill it as it is: SIGKILL ends a paused process too."),
            **evidence,
        )
    if life.status != "exited":
        return not_yet(
            _("{holdout} is {status}.").format(holdout=HOLDOUT, status=life.status),
            _("Wait a moment and check again."),
            **evidence,
        )
    evidence["exit_code"] = life.exit_code
    if life.events is None:
        return not_yet(
            _(
                "{holdout} exited with code {exit_code}, but the daemon's event log no longer reaches back to "
                "setup, so labkit cannot tell a kill from a stop."
            ).format(holdout=HOLDOUT, exit_code=life.exit_code),
            _("{again} End it again and check at once.").format(again=_after_setup_only("kill.now")),
            **evidence,
        )
    evidence["signals"] = ", ".join(map(str, life.signals())) or "none"
    if "stop" in life.actions():
        return not_yet(
            _(
                "{holdout} was stopped, not killed: `docker stop` sent SIGTERM, which it ignores{grace}, then "
                "sent SIGKILL (exit code 137)."
            ).format(holdout=HOLDOUT, grace=_grace(life)),
            _(
                "The result looks the same, but stop is the polite way and had to wait out its grace period. "
                "Which command sends SIGKILL at once? {again}"
            ).format(again=_after_setup_only("kill.now")),
            **evidence,
        )
    if SIGKILL in life.signals() and life.exit_code == 137:
        return passed(
            _(
                "{holdout} was killed: the daemon sent SIGKILL at once, with no stop and no grace period, and "
                "it exited with 137 (128 + 9)."
            ).format(holdout=HOLDOUT),
            **evidence,
        )
    if life.oom:
        return not_yet(
            _("{holdout} was killed by the kernel for running out of memory (OOMKilled), not by you.").format(
                holdout=HOLDOUT
            ),
            _after_setup_only("kill.now"),
            **evidence,
        )
    if life.exit_code == 137:
        return not_yet(
            _(
                "{holdout} was ended by SIGKILL (exit code 137), but not through Docker: the daemon sent no "
                "kill (a `kill -9` of its process on the host?)."
            ).format(holdout=HOLDOUT),
            _("Ask the daemon to do it, so Docker knows why it ended. {again}").format(
                again=_after_setup_only("kill.now")
            ),
            **evidence,
        )
    return not_yet(
        _("{holdout} exited with code {exit_code}, not 137: it was not ended by SIGKILL.").format(
            holdout=HOLDOUT, exit_code=life.exit_code
        ),
        _after_setup_only("kill.now"),
        **evidence,
    )


def _check_kill(ctx: Context) -> Verdict:
    return kill_verdict(gather(ctx.client, HOLDOUT, ctx.exercise.id))


KILL_NOW = Exercise(
    id="kill.now",
    lesson=LESSON,
    title=N_("Kill a container that will not stop"),
    prompt=N_(
        "The running container holdout ignores SIGTERM. End it at once, without a grace period, and "
        "leave it (stopped) in place."
    ),
    check=_check_kill,
    hints=(
        N_(
            "`docker logs holdout` says it ignores SIGTERM, so asking it to stop only makes Docker wait. "
            "Which command does not ask?"
        ),
        N_(
            "`docker kill` sends SIGKILL straight away (unless -s names another signal); SIGKILL cannot be "
            "caught or ignored."
        ),
        N_("Type: docker kill holdout"),
    ),
    solution=(f"docker kill {HOLDOUT}",),
    setup=_setup_kill,
    names=(HOLDOUT,),
)


# --- restart.web ----------------------------------------------------------------------

WEBBY = "webby"
WEBBY_IMAGE = "labkit/hello-dock"


def _setup_restart(ctx: Context) -> dict[str, Any]:
    container = ctx.client.containers.run(WEBBY_IMAGE, name=WEBBY, detach=True, labels=exercise_labels(ctx.exercise))
    wait.container_running(container, timeout=READY_TIMEOUT)
    container.reload()
    return {
        "container": WEBBY,
        "id": str(container.id)[:12],
        "started": str(container.attrs.get("State", {}).get("StartedAt") or ""),
    }


def restart_verdict(life: Life, setup_started: str) -> Verdict:
    """Judge ``restart.web`` (pure): ``setup_started`` is the ``StartedAt`` setup reported."""
    if not life.exists:
        return not_yet(
            _("There is no container named {webby}: setup never ran, or it was removed.").format(webby=WEBBY),
            _after_setup_only("restart.web"),
        )
    if not life.ours:
        return not_yet(
            _(
                "{webby} is a new container, not the one setup started: removing it and running it again made "
                "another container (a new id, a fresh writable layer)."
            ).format(webby=WEBBY),
            _("A restart keeps the container and starts its process again. {again}").format(
                again=_after_setup_only("restart.web")
            ),
        )
    evidence: dict[str, Any] = {"status": life.status, "started": life.started_at}
    if life.status == "exited":
        return not_yet(
            _("{webby} is stopped: that is the first half of a restart.").format(webby=WEBBY),
            _("A restart ends the process and starts it again in the same container. What brings a stopped one back?"),
            **evidence,
        )
    if life.status != "running":
        return not_yet(
            _("{webby} is {status}, not running.").format(webby=WEBBY, status=life.status),
            _("A restarted container runs: check again in a moment."),
            **evidence,
        )
    if not setup_started or life.started_at == setup_started:
        if "unpause" in life.actions():
            return not_yet(
                _("{webby} was paused and unpaused: its process was frozen and thawed, never restarted.").format(
                    webby=WEBBY
                ),
                _("A restart ends the process (SIGTERM first) and starts a new one in the same container."),
                **evidence,
            )
        return not_yet(
            _("{webby} still runs the process setup started.").format(webby=WEBBY),
            _("One command ends a container's process gracefully and starts it again, keeping the container."),
            **evidence,
        )
    actions = life.actions()
    if life.events is None:
        return passed(
            _(
                "{webby} runs a new process in the same container (started {started_at}); the daemon's event "
                "log no longer says how."
            ).format(webby=WEBBY, started_at=life.started_at),
            **evidence,
        )
    if "restart" in actions:
        return passed(
            _(
                "{webby} was restarted (`docker restart`): the same container, its process stopped and started again."
            ).format(webby=WEBBY),
            **evidence,
        )
    if "stop" in actions:
        return passed(
            _(
                "{webby} was stopped and started again: the same container with a new process. That is exactly "
                "what `docker restart` does, in one command."
            ).format(webby=WEBBY),
            **evidence,
        )
    if SIGKILL in life.signals():
        return not_yet(
            _("{webby} was killed (SIGKILL, no SIGTERM first) and started again.").format(webby=WEBBY),
            _(
                "A restart asks the process to stop first and waits the grace period; a kill skips that. "
                "Restart it the graceful way."
            ),
            **evidence,
        )
    return passed(
        _("{webby} runs a new process in the same container (started {started_at}).").format(
            webby=WEBBY, started_at=life.started_at
        ),
        **evidence,
    )


def _check_restart(ctx: Context) -> Verdict:
    reported = ctx.setup or {}
    life = gather(ctx.client, WEBBY, ctx.exercise.id, str(reported.get("id") or "") or None)
    return restart_verdict(life, str(reported.get("started") or ""))


RESTART_WEB = Exercise(
    id="restart.web",
    lesson=LESSON,
    title=N_("Restart a running container"),
    prompt=N_("Restart the running container webby: the same container, with its process stopped and started again."),
    check=_check_restart,
    hints=(
        N_("`docker inspect -f '{{.State.StartedAt}}' webby` shows when its process started; a restart moves that on."),
        N_("There is one command for stop-then-start; it stops gracefully (SIGTERM, then the grace period) first."),
        N_("Type: docker restart webby"),
    ),
    solution=(f"docker restart {WEBBY}",),
    setup=_setup_restart,
    names=(WEBBY,),
)
