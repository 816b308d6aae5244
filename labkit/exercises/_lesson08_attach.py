"""Lesson 08's ``attach.detach``: attach to a container's main shell and let go of it, leaving it running.

Setup runs ``hangout``: ``sh`` on a TTY with stdin open (``docker run -dit``). The learner
attaches (``docker attach hangout``, or ``labkit.interactive`` in a notebook) and
detaches with Ctrl+P Ctrl+Q. It passes when the daemon's events since the container's
latest start hold an ``attach``, and it still runs.

What the daemon cannot see: the docker CLI catches Ctrl+P Ctrl+Q itself and simply closes
its connection, so Engine 20.10 logs no ``detach`` event (one is counted as evidence where
an engine logs it). Leaving by closing the terminal window looks the same to the daemon,
and is accepted for that reason; a terminal still attached cannot be told apart either.
Named near-misses: the container exited (``exit`` or Ctrl+D ended its main shell),
ended and started again without a new attach, a ``docker exec`` shell instead of an
attach (a second process, not the main one), paused, gone or replaced, never attached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors

from labkit.core import engine, fmt
from labkit.core.i18n import N_, _
from labkit.core.interactive import interactive
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.exercises.machinery.runner import exercise_labels

LESSON = "08"
HANGOUT = "hangout"
IMAGE = "busybox:latest"


def _setup(ctx: Context) -> dict[str, Any]:
    """Run hangout as ``docker run -dit --name hangout busybox sh`` would.

    Raises:
        ImageMissing: busybox is not on this daemon.
    """
    with engine.converted(image=IMAGE):
        ctx.client.containers.run(
            IMAGE, "sh", name=HANGOUT, detach=True, tty=True, stdin_open=True, labels=exercise_labels(ctx.exercise)
        )
    return {"container": HANGOUT}


@dataclass(frozen=True)
class AttachFacts:
    """What the daemon shows about ``hangout``.

    Attributes:
        exists: a container named ``hangout`` exists.
        ours: setup made it (the exercise's label).
        status: its state.
        exit_code: its main shell's exit code once it ended.
        actions: the daemon's event actions for it since its latest start, oldest first;
            ``None`` when the event buffer no longer reaches back to that start.
        starts: how many times it started since created, when the buffer reaches its creation.
    """

    exists: bool
    ours: bool = False
    status: str = ""
    exit_code: int = 0
    actions: tuple[str, ...] | None = None
    starts: int | None = None


def attach_verdict(facts: AttachFacts) -> Verdict:
    """Judge ``attach.detach`` (pure)."""
    again = _('Run `labkit.setup("attach.detach")` again')
    if not facts.exists:
        return not_yet(
            _("There is no container named {hangout}: setup never ran, or it was removed.").format(hangout=HANGOUT),
            _("{again}: it starts one.").format(again=again),
        )
    if not facts.ours:
        return not_yet(
            _("A container named {hangout} exists, but setup did not start it.").format(hangout=HANGOUT),
            _("{again}: it replaces it.").format(again=again),
        )
    evidence: dict[str, Any] = {"status": facts.status}
    if facts.status == "exited":
        return not_yet(
            _(
                "{hangout} has stopped (exit code {exit_code}): its main shell ended. Typing `exit` or pressing "
                "Ctrl+D in an attached session ends the container's main process, and with it the container."
            ).format(hangout=HANGOUT, exit_code=facts.exit_code),
            _("{again} (or `docker start {hangout}`), attach, and this time let go with the keys that detach.").format(
                again=again, hangout=HANGOUT
            ),
            **evidence,
        )
    if facts.status != "running":
        return not_yet(
            _("{hangout} is {status}, not running.").format(hangout=HANGOUT, status=facts.status),
            _("{again}.").format(again=again),
            **evidence,
        )
    if facts.actions is None:
        return not_yet(
            _(
                "{hangout} runs, but the daemon's event log no longer reaches back to its start, so labkit "
                "cannot see whether you attached."
            ).format(hangout=HANGOUT),
            _("Attach again and detach, then check at once."),
            **evidence,
        )
    attached = facts.actions.count("attach")
    evidence["attached"] = attached
    if "detach" in facts.actions:
        evidence["detached"] = facts.actions.count("detach")
    if attached:
        return passed(
            _(
                "You attached to {hangout}'s main shell and it still runs: the detach keys (Ctrl+P Ctrl+Q) let "
                "go without ending it."
            ).format(hangout=HANGOUT),
            **evidence,
        )
    if facts.starts is not None and facts.starts > 1:
        return not_yet(
            _("{hangout} ended and was started again, and nobody has attached to it since.").format(hangout=HANGOUT),
            _("Attach to the running one now, and leave with the detach keys rather than `exit`."),
            **evidence,
        )
    if any(action.startswith("exec_start") for action in facts.actions):
        return not_yet(
            _(
                "You ran `docker exec` in {hangout}: that starts a second process beside its main shell, and "
                "nothing attached to the main one."
            ).format(hangout=HANGOUT),
            _("`docker attach` connects your terminal to the main process (the one `docker run` started)."),
            **evidence,
        )
    return not_yet(
        _("{hangout} runs, and nothing has attached to it since it started.").format(hangout=HANGOUT),
        _("Which command connects your terminal to a running container's main process? Then, which keys let go?"),
        **evidence,
    )


def _action(raw: dict[str, Any]) -> str:
    return str(raw.get("Action") or raw.get("status") or "")


def gather(client: docker.DockerClient) -> AttachFacts:
    """Read :class:`AttachFacts` from the live daemon."""
    container = engine.find_container(HANGOUT)
    if container is None or container.name != HANGOUT:
        return AttachFacts(exists=False)
    state = container.attrs.get("State", {})
    facts: dict[str, Any] = {
        "exists": True,
        "ours": container.labels.get("labkit.exercise") == "attach.detach",
        "status": str(state.get("Status") or ""),
        "exit_code": int(state.get("ExitCode") or 0),
    }
    created = fmt.timestamp(container.attrs.get("Created"))
    if created is not None:
        try:
            found = list(
                client.api.events(
                    since=f"{created - 1.0:.9f}",
                    until=f"{time.time():.9f}",
                    filters={"container": str(container.id)},
                    decode=True,
                )
            )
        except (docker.errors.APIError, ValueError):
            found = []
        actions = [_action(raw) for raw in found]
        if "create" in actions:
            facts["starts"] = actions.count("start")
        starts = [n for n, action in enumerate(actions) if action == "start"]
        if starts:
            facts["actions"] = tuple(actions[starts[-1] + 1 :])
    return AttachFacts(**facts)


def _check(ctx: Context) -> Verdict:
    return attach_verdict(gather(ctx.client))


def attach_and_detach(ctx: Context) -> None:
    """The reference solution, typed into a real terminal: attach, run one command, press Ctrl+P Ctrl+Q.

    Raises:
        InteractiveError: the attach failed (no such container, or it is not running).
        WaitTimeout: the shell did not answer, or the CLI did not let go.
    """
    with interactive(f"docker attach {HANGOUT}", lesson=LESSON, show=False, timeout=20) as term:
        term.run("echo attached to the main shell")
        term.detach()


ATTACH_DETACH = Exercise(
    id="attach.detach",
    lesson=LESSON,
    title=N_("Attach to a container, then detach and leave it running"),
    prompt=N_("Attach to the running container hangout, then detach with Ctrl+P Ctrl+Q so that it keeps running."),
    check=_check,
    hints=(
        N_("`docker exec` would start a second shell; you want hangout's own, the one its `docker run` started."),
        N_(
            "`docker attach NAME` connects your terminal to that main shell. `exit` there would end it; the "
            "detach keys let go instead. In a notebook, drive it with `labkit.interactive(...)` and "
            "`term.detach()`."
        ),
        N_(
            "Type: docker attach hangout, then press Ctrl+P and then Ctrl+Q. In a notebook: with "
            'labkit.interactive("docker attach hangout") as term: term.detach()'
        ),
    ),
    solution=(f"docker attach {HANGOUT}", "# then press Ctrl+P, then Ctrl+Q"),
    setup=_setup,
    names=(HANGOUT,),
    act=attach_and_detach,
)
