"""The lab's side of the hub's grader: in a classroom hub's lab, checks are decided and recorded by the hub.

A lab that :mod:`.hub_grader` configured has ``LABKIT_HUB_GRADER`` (the grader's address,
reached through the relay into the learner's namespace) and ``JUPYTERHUB_API_TOKEN`` (the
lab's own token, which tells the grader who the learner is). Then ``labkit.check``, the
exercise panel's Check button and ``labkit check`` in the lab's terminal ask the grader,
which runs the same check as the learner against their own daemon and records it; the
learner sees the hub's verdict, marked "recorded by: the hub".

When the grader cannot be asked (not answering, or it could not check), the check runs in
the lab as before and its message ends with one line saying it was **not recorded** and
why: the learner still learns whether they got there, and nobody mistakes it for a grade.

``import labkit`` registers :func:`ask` with the exercises' runner (:func:`install`); the
exercises never import this module.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from labkit.core import http
from labkit.core.errors import HttpUnreachable
from labkit.core.i18n import N_, _
from labkit.exercises.machinery import runner
from labkit.exercises.machinery.model import CheckResult, Exercise

#: The grader's address, set in each lab by :func:`labkit.classroom.hub_grader.configure`.
GRADER_ENV = "LABKIT_HUB_GRADER"
#: The lab's own JupyterHub API token (JupyterHub sets it in every single-user server).
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"
#: Seconds between bytes of the grader's answer: it runs the whole check before answering.
TIMEOUT = 120.0
#: Largest answer read from the grader.
MAX_ANSWER = 256 * 1024
#: What a result from the hub carries in its evidence, so it is seen to be the hub's.
RECORDED = (N_("recorded by"), N_("the hub"))


def grader_url(base: str, exercise_id: str) -> str:
    """Where to POST a check of ``exercise_id``.

    Example:
        >>> grader_url("http://127.0.0.1:8123/services/labkit-grader/", "run.publish-detach")
        'http://127.0.0.1:8123/services/labkit-grader/check/run.publish-detach'
    """
    return f"{base.rstrip('/')}/check/{quote(exercise_id, safe='.-_')}"


def from_answer(status: int, body: bytes) -> CheckResult | str:
    """The hub's verdict from its answer, or one line saying why there is none.

    Example:
        >>> from_answer(200, b'{"exercise": "a.b", "title": "T", "passed": true, "message": "ok"}').passed
        True
        >>> from_answer(503, b'{"error": "could not check: the engine is stopped"}')
        "the hub's grader answered 503: could not check: the engine is stopped"
    """
    try:
        data: Any = json.loads(body)
    except ValueError:
        data = None
    if status == 200 and isinstance(data, dict):
        try:
            evidence = data.get("evidence") or {}
            return CheckResult(
                str(data["exercise"]),
                str(data["title"]),
                bool(data["passed"]),
                str(data["message"]),
                None if data.get("hint") is None else str(data["hint"]),
                {**(evidence if isinstance(evidence, dict) else {}), _(RECORDED[0]): _(RECORDED[1])},
            )
        except KeyError as e:
            return _("the hub's grader answered without {field}").format(field=e)
    error = data.get("error") if isinstance(data, dict) else None
    shown = str(error) if error else body[:200].decode("utf-8", "replace").strip() or _("no message")
    return _("the hub's grader answered {status}: {error}").format(status=status, error=shown)


def ask(exercise: Exercise, answer: str | None) -> CheckResult | str | None:
    """The hub's verdict on ``exercise``; a reason when it cannot give one; None outside a hub's lab."""
    base, token = os.environ.get(GRADER_ENV), os.environ.get(TOKEN_ENV)
    if not base or not token:
        return None
    body = json.dumps({} if answer is None else {"answer": answer}).encode()
    try:
        got = http.request(
            "POST",
            grader_url(base, exercise.id),
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            data=body,
            timeout=TIMEOUT,
            limit=MAX_ANSWER,
        )
    except HttpUnreachable as e:
        return _("the hub's grader did not answer ({cause})").format(cause=e.cause)
    return from_answer(got.status, got.body)


def install() -> None:
    """Let the hub's grader decide checks in this process (a no-op outside a hub's lab)."""
    runner.set_grader(ask)
