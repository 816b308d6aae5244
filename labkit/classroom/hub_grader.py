"""The classroom hub's grading service: verdicts that count are decided and recorded by the hub.

A JupyterHub service (``labkit-grader``) the hub starts and stops, running as root like the
hub (:func:`configure` adds it to the hub's config). Its routes, under
``/services/labkit-grader/``:

- ``POST check/EXERCISE_ID`` with the learner's lab token (``Authorization: token …``;
  body ``{}`` or ``{"answer": "…"}``): the hub names the learner from the token, never from
  the body. The check runs **as that learner**, in their network namespace, against their own
  daemon and files (``python -m labkit check ID --json`` through
  :func:`learner_engine.run_as`), with ``DOCKER_HOST`` naming root's verified link to the
  daemon root started (:func:`learner_engine.pinned_socket`): a fake daemon on the learner's
  socket gets "could not check", never a verdict. The verdict is stored (learner, exercise,
  passed or not yet, message, time) in ``STATE/grader.sqlite`` (root's, 0600; the classroom's
  :class:`~labkit.classroom.store.Store`) and returned as the ``CheckResult``'s JSON.
  Answers: 200 the verdict; 400 a malformed body (one line); 401 no or a bogus token; 404 an
  unknown exercise; 409 a check of theirs already running; 503 could not check.
- ``GET /`` (admins only, through the hub's OAuth; a learner gets 403): the classroom's live
  view (:mod:`.view`, :mod:`.hub`, ``static/``) of the stored verdicts; ``api/stream``,
  ``api/state``, ``api/gradebook.csv`` and ``api/results.json`` (Gradescope's format); the
  same gradebook offline: :func:`labkit.classroom.hub_records.grades` (``labkit hub grades``).

Nothing a learner sends or keeps is trusted: their progress record and the classroom
client's posts are theirs to edit, and count for nothing here. The check itself runs as the
learner, so it reads only what they may read; what it may not do is call the grader again
(the grader's address is not in its environment).

What stays the learner's: the check process runs under their uid, so a learner who can
ptrace their own processes (no Yama LSM, or ``ptrace_scope`` 0) could tamper with it while it
runs. Lock that down on the server (``kernel.yama.ptrace_scope=1``) when grades matter.

On Kubernetes (``deploy/kubernetes/grader.yaml``) the grader runs in a pod of its own, as an
unprivileged user, with ``--kubernetes-namespace=NS``: the same check runs in the learner's
pod in ``NS`` through the Kubernetes API (:mod:`.hub_grader_k8s`), and is read, recorded and
answered by the same code as here. The hub's address and the grader's token come from the
Deployment's environment (``JUPYTERHUB_API_URL``, ``JUPYTERHUB_API_TOKEN``), as HubAuth reads
them; the grader listens on ``--ip`` (``0.0.0.0`` there, for its Service).

Example:
    >>> from traitlets.config import Config
    >>> c = Config()
    >>> configure(c, Path("/var/lib/labkit-hub"), 8123)
    >>> c.JupyterHub.services[0]["name"], c.Spawner.environment["LABKIT_HUB_GRADER"]
    ('labkit-grader', 'http://127.0.0.1:8123/services/labkit-grader/')
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from traitlets.config import Config

from labkit.classroom import learner_engine as le
from labkit.classroom import view
from labkit.classroom.hub import Hub, sse
from labkit.classroom.hub_checks import GRADER_ENV
from labkit.classroom.hub_records import DB_NAME, verdict_event
from labkit.classroom.store import Store
from labkit.core.errors import LabkitError, UnknownExercise
from labkit.core.i18n import _
from labkit.course.grade import grade_events
from labkit.exercises.machinery import catalog
from labkit.exercises.machinery.model import CheckResult

if TYPE_CHECKING:
    from labkit.classroom.hub_grader_k8s import PodExec

SERVICE = "labkit-grader"
#: What a learner's lab token needs to call the grader (and what their OAuth login to it gets).
ACCESS_SCOPE = f"access:services!service={SERVICE}"
#: JupyterHub's own default scopes for these roles (``jupyterhub.roles.get_default_roles``).
DEFAULT_ROLE_SCOPES = {"user": ["self"], "server": ["users:activity!user", "access:servers!server"]}
#: Seconds one check may take as the learner.
CHECK_TIMEOUT = 90.0
#: Largest request body (a check's body is ``{}`` or a short answer).
MAX_BODY = 16 * 1024
MAX_ANSWER = 1000
#: Seconds between the live view's heartbeats.
HEARTBEAT = 15.0
#: The files of the live view's page.
_PAGE_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}


class BadRequest(LabkitError):
    """A request the grader cannot read: answered 400 with this one line."""


# --- the hub's configuration ------------------------------------------------------------------


def _merge_role(roles: list[dict[str, Any]], name: str, scope: str) -> None:
    for role in roles:
        if role.get("name") == name:
            if scope not in role.setdefault("scopes", []):
                role["scopes"] = [*role["scopes"], scope]
            return
    roles.append({"name": name, "scopes": [*DEFAULT_ROLE_SCOPES[name], scope]})


def configure(c: Config, state: Path, port: int) -> None:
    """Add the grading service to a hub's config ``c``.

    - the service, started by the hub (root, as the hub), on ``127.0.0.1:port``;
    - ``access:services!service=labkit-grader`` for every user (the ``user`` role) and every
      lab's token (the ``server`` role, which ``Spawner.server_token_scopes`` defaults to; a
      token gets only scopes its user holds, hence both); when ``server_token_scopes`` is set
      as a list, the scope is added to it too;
    - ``LABKIT_HUB_GRADER`` in every lab, and the grader's port relayed into each learner's
      network namespace (``LearnerEngineSpawner.relayed_ports``): the lab cannot reach the
      host's loopback otherwise.

    Args:
        c: the hub's traitlets config.
        state: a root-only (0700) folder for the grader's database.
        port: a free port on the host's 127.0.0.1.
    """
    url = f"http://127.0.0.1:{port}"
    services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    services.append(
        {
            "name": SERVICE,
            "url": url,
            "command": [sys.executable, "-m", "labkit.classroom.hub_grader", f"--state={state}", f"--port={port}"],
            "cwd": "/",
            "oauth_no_confirm": True,
            "display": True,
        }
    )
    c.JupyterHub.services = services
    roles = [dict(r) for r in c.JupyterHub.load_roles] if "load_roles" in c.JupyterHub else []
    _merge_role(roles, "user", ACCESS_SCOPE)
    _merge_role(roles, "server", ACCESS_SCOPE)
    c.JupyterHub.load_roles = roles
    scopes = c.Spawner.server_token_scopes if "server_token_scopes" in c.Spawner else None
    if isinstance(scopes, list) and ACCESS_SCOPE not in scopes:
        c.Spawner.server_token_scopes = [*scopes, ACCESS_SCOPE]
    environment = dict(c.Spawner.environment) if "environment" in c.Spawner else {}
    environment[GRADER_ENV] = f"{url}/services/{SERVICE}/"
    c.Spawner.environment = environment
    relayed = list(c.LearnerEngineSpawner.relayed_ports) if "relayed_ports" in c.LearnerEngineSpawner else []
    c.LearnerEngineSpawner.relayed_ports = sorted({*relayed, port})


# --- one check, as the learner (pure parts first) ----------------------------------------------


def parse_body(body: bytes) -> str | None:
    """The learner's answer from a check's body (``{}`` or ``{"answer": "…"}``).

    Raises:
        BadRequest: not a JSON object, a field other than ``answer``, or an answer that is not a short string.

    Example:
        >>> parse_body(b""), parse_body(b'{"answer": " 42 "}')
        (None, '42')
        >>> parse_body(b'{"learner": "bob"}')
        Traceback (most recent call last):
        ...
        labkit.classroom.hub_grader.BadRequest: unknown field(s) learner: the grader takes only "answer" (the learner is named by the token)
    """
    if len(body) > MAX_BODY:
        raise BadRequest(_("the body is over {max_body} bytes").format(max_body=MAX_BODY))
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except ValueError as e:
        raise BadRequest(_("the body is not JSON ({error})").format(error=e)) from e
    if not isinstance(data, dict):
        raise BadRequest(_("the body must be a JSON object"))
    unknown = sorted(set(data) - {"answer"})
    if unknown:
        raise BadRequest(
            _('unknown field(s) {fields}: the grader takes only "answer" (the learner is named by the token)').format(
                fields=", ".join(unknown)
            )
        )
    answer = data.get("answer")
    if answer is None:
        return None
    if not isinstance(answer, str | int) or isinstance(answer, bool) or len(str(answer)) > MAX_ANSWER:
        raise BadRequest(
            _('"answer" must be a string of at most {max_answer} characters').format(max_answer=MAX_ANSWER)
        )
    return str(answer).strip()


def check_argv(exercise_id: str, answer: str | None, python: str = sys.executable) -> list[str]:
    """The check the grader runs as the learner: labkit's own CLI, machine-readable.

    ``python`` is the learner's labkit: the grader's own on one server, the image's in a pod.

    Example:
        >>> check_argv("run.publish-detach", None)[1:]
        ['-m', 'labkit', 'check', 'run.publish-detach', '--json']
        >>> check_argv("a.b", "-rf")[-1]
        '--answer=-rf'
    """
    argv = [python, "-m", "labkit", "check", exercise_id, "--json"]
    return argv if answer is None else [*argv, f"--answer={answer}"]


def result_from_run(returncode: int, stdout: str, stderr: str) -> CheckResult:
    """The verdict a check run printed (exit 0 passed, 1 not yet, ``--json``).

    Raises:
        LabkitError: the check could not check (exit 2: its one line), or printed no verdict.

    Example:
        >>> out = '{"exercise": "a.b", "title": "T", "passed": false, "message": "no", "hint": "h", "evidence": {}}'
        >>> result_from_run(1, out, "").status
        'not yet'
        >>> result_from_run(2, "", "labkit: the daemon did not answer — start it\\n")
        Traceback (most recent call last):
        ...
        labkit.core.errors.LabkitError: could not check: labkit: the daemon did not answer — start it
    """
    if returncode not in (0, 1):
        lines = [line for line in stderr.splitlines() if line.strip()] or [
            _("the check exited {code}").format(code=returncode)
        ]
        raise LabkitError(_("could not check: {reason}").format(reason=lines[-1].strip()[:300]))
    try:
        data = json.loads(stdout)
        result = CheckResult(
            str(data["exercise"]),
            str(data["title"]),
            bool(data["passed"]),
            str(data["message"]),
            None if data.get("hint") is None else str(data["hint"]),
            dict(data.get("evidence") or {}),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise LabkitError(
            _("could not check: the check printed no verdict ({error})").format(error=e), _("read the grader's log")
        ) from e
    if result.passed != (returncode == 0):
        raise LabkitError(_("could not check: the check's exit code and verdict disagree"), _("read the grader's log"))
    return result


def run_on_server(name: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` as learner ``name`` in their namespace, against the daemon root started (root, blocking).

    Raises:
        LabkitError: "could not check": no such learner or engine, or a socket not served by their dockerd.
        subprocess.TimeoutExpired: the check ran out of time.
    """
    user = le.find_user(name)
    engine = le.running(user) if user is not None else None
    if engine is None:
        raise LabkitError(
            _("could not check: {name}'s Docker engine is not running").format(name=name),
            _("start your server from the hub"),
        )
    pinned = le.pinned_socket(engine)
    return le.run_as(
        engine,
        argv,
        timeout=CHECK_TIMEOUT,
        netns=True,
        env={"DOCKER_HOST": f"unix://{pinned}", **_python_path(), **_language()},
    )


async def run_check(name: str, exercise_id: str, answer: str | None, pods: PodExec | None = None) -> CheckResult:
    """Run the check as learner ``name``: on this server (``pods`` None), or in their pod on Kubernetes.

    Either way the same command runs as the learner and its output is read by :func:`result_from_run`.

    Raises:
        LabkitError: "could not check": the learner's engine or pod is not there, or the check
            could not check or ran out of time (:data:`CHECK_TIMEOUT`).
    """
    try:
        if pods is None:
            argv = check_argv(exercise_id, answer)
            done = await asyncio.get_running_loop().run_in_executor(None, run_on_server, name, argv)
        else:
            done = await pods.run(name, check_argv(exercise_id, answer, pods.python), CHECK_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise LabkitError(
            _("could not check: the check took over {seconds:.0f} s").format(seconds=CHECK_TIMEOUT),
            _("try again; if it keeps happening, ask the instructor"),
        ) from e
    return result_from_run(done.returncode, done.stdout, done.stderr)


def _language() -> dict[str, str]:
    """The hub's course language (``LABKIT_LANG``), so the verdict a lab shows speaks it."""
    lang = os.environ.get("LABKIT_LANG")
    return {"LABKIT_LANG": lang} if lang else {}


def _python_path() -> dict[str, str]:
    """The grader's own ``PYTHONPATH`` (root's, from the hub), so the check runs the same labkit."""
    value = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": value} if value else {}


# --- the service ------------------------------------------------------------------------------


class Grader:
    """The service's state: the store, the live room, whose checks are running, and where they run.

    Args:
        state: the folder of the grader's database.
        pods: on Kubernetes, the learners' pods (:class:`~labkit.classroom.hub_grader_k8s.PodExec`);
            None on one server.
    """

    def __init__(self, state: Path, pods: PodExec | None = None) -> None:
        self.pods = pods
        self.store = Store(state / DB_NAME)
        exercises = [{"id": e.id, "lesson": e.lesson, "title": e.title} for e in catalog.all_exercises()]
        self.hub = Hub(exercises)
        self.hub.load(self.store.events(), self.store.learner_names())
        self.running: set[str] = set()


class _Handler(HubOAuthenticated, web.RequestHandler):  # type: ignore[misc]  # jupyterhub ships no types
    """JSON errors of one line; the hub's OAuth (or a token) says who is asking."""

    def initialize(self, grader: Grader) -> None:
        self.grader = grader
        self.hub_auth = self.settings["hub_auth"]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish({"error": self._reason or "error"})

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish({"error": message})


class CheckHandler(_Handler):
    """``POST check/ID``: the learner's lab token names the learner; the hub runs and records the check."""

    def check_xsrf_cookie(self) -> None:
        """Only a token in ``Authorization`` is accepted here (below), so no cookie can be replayed."""

    async def post(self, exercise_id: str) -> None:
        if not self.request.headers.get("Authorization"):
            return self.fail(401, _("a JupyterHub API token is needed (Authorization: token …)"))
        user = self.current_user
        if user is None:
            return self.fail(401, _("the hub does not know this token, or it may not call the grader"))
        if user.get("kind", "user") != "user":
            return self.fail(403, _("only a learner's own token can ask for a check"))
        try:
            answer = parse_body(self.request.body)
            exercise = catalog.get(exercise_id)
        except BadRequest as e:
            return self.fail(400, str(e))
        except UnknownExercise as e:
            return self.fail(404, str(e))
        name = str(user["name"])
        if name in self.grader.running:
            return self.fail(409, _("a check for {name} is running already: wait for it").format(name=name))
        self.grader.running.add(name)
        loop = asyncio.get_running_loop()
        try:
            result = await run_check(name, exercise.id, answer, self.grader.pods)
            stored = await loop.run_in_executor(
                None, self.grader.store.add, [verdict_event(name, result, exercise.lesson)]
            )
        except LabkitError as e:
            return self.fail(503, str(e))
        finally:
            self.grader.running.discard(name)
        self.grader.hub.publish(stored)
        self.finish({**result.to_dict(), "learner": name, "recorded": True})


class AdminHandler(_Handler):
    """What only the hub's admins see: the live view and the gradebook."""

    def admin(self) -> bool:
        """True for an admin; otherwise answers (login redirect, 401 or 403) and returns False."""
        user = self.current_user
        if user is None:
            if self.request.headers.get("Authorization") or self.request.method != "GET":
                self.fail(401, _("log in to the hub as an admin"))
            else:
                self.redirect(self.get_login_url())
            return False
        if not user.get("admin"):
            self.fail(403, _("{name} is not an admin of this hub").format(name=user.get("name")))
            return False
        return True


class PageHandler(AdminHandler):
    async def get(self, name: str = "index.html") -> None:
        if name not in _PAGE_FILES:
            return self.fail(404, _("no such file"))
        if not self.admin():
            return
        self.set_header("Content-Type", _PAGE_FILES[name])
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        self.set_header("X-Content-Type-Options", "nosniff")
        body = resources.files("labkit.classroom").joinpath("static", name).read_bytes()
        self.finish(view.page_html(body) if name == "index.html" else body)


class StateHandler(AdminHandler):
    async def get(self) -> None:
        if self.admin():
            self.finish(self.grader.hub.room.snapshot(time.time()))


class GradebookHandler(AdminHandler):
    async def get(self, fmt: str) -> None:
        if not self.admin():
            return
        stored = await asyncio.get_running_loop().run_in_executor(None, self.grader.store.events)
        book = grade_events([s.event for s in stored])
        if fmt == "gradebook.csv":
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header("Content-Disposition", 'attachment; filename="gradebook.csv"')
            self.finish(book.to_csv())
        else:
            self.finish(book.to_gradescope())


class StreamHandler(AdminHandler):
    async def get(self) -> None:
        if not self.admin():
            return
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-store")
        sub, snap = self.grader.hub.subscribe()
        try:
            self.write("retry: 2000\n" + sse("snapshot", snap))
            await self.flush()
            while not sub.overflowed:
                try:
                    message = await asyncio.wait_for(sub.queue.get(), HEARTBEAT)
                except TimeoutError:
                    message = sse("tick", {"now": time.time()})
                if message is None:
                    break
                self.write(message)
                await self.flush()
        except StreamClosedError:
            pass
        finally:
            self.grader.hub.subscribers.discard(sub)


def make_app(grader: Grader, prefix: str, hub_auth: HubOAuth) -> web.Application:
    """The service's tornado app under ``prefix`` (``/services/labkit-grader/``)."""
    p = prefix.rstrip("/")
    args = {"grader": grader}
    routes: list[Any] = [
        (rf"{p}/check/([^/]+)", CheckHandler, args),
        (rf"{p}/?", PageHandler, args),
        (rf"{p}/static/([^/]+)", PageHandler, args),
        (rf"{p}/api/state", StateHandler, args),
        (rf"{p}/api/stream", StreamHandler, args),
        (rf"{p}/api/(gradebook\.csv|results\.json)", GradebookHandler, args),
        (rf"{p}/oauth_callback", HubOAuthCallbackHandler),
    ]
    return web.Application(routes, hub_auth=hub_auth, cookie_secret=secrets.token_bytes(32), login_url=None)


def parser() -> argparse.ArgumentParser:
    """The service's command line: as the hub starts it on one server, as ``grader.yaml`` runs it on Kubernetes."""
    p = argparse.ArgumentParser(prog="labkit-grader", description=__doc__.splitlines()[0])
    p.add_argument("--state", type=Path, required=True, help="the grader's private folder for its database")
    p.add_argument("--port", type=int, required=True, help="the port to listen on")
    p.add_argument(
        "--ip", default="127.0.0.1", help="the address to listen on (default 127.0.0.1; 0.0.0.0 in a Kubernetes pod)"
    )
    p.add_argument(
        "--kubernetes-namespace",
        metavar="NS",
        help="run each check in the learner's pod in NS (KubeSpawner's), through the Kubernetes API, "
        "with this pod's service account; the hub's address and token from JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN",
    )
    return p


def start_problem(args: argparse.Namespace, euid: int, environ: dict[str, str]) -> str | None:
    """Why the grader cannot start with ``args`` here (one line), or None.

    On one server it runs checks as each learner, so it must be root. On Kubernetes it runs
    as nobody in particular but needs the token the chart made for it to ask the hub who a
    learner is.

    Example:
        >>> start_problem(parser().parse_args(["--state=/s", "--port=1"]), 1000, {})
        'labkit-grader: runs as root (it runs checks as each learner)'
        >>> k8s = parser().parse_args(["--state=/s", "--port=1", "--kubernetes-namespace=ns"])
        >>> start_problem(k8s, 1000, {"JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_API_URL": "http://hub:8081/hub/api"})
    """
    if args.kubernetes_namespace is None:
        return None if euid == 0 else "labkit-grader: runs as root (it runs checks as each learner)"
    missing = [name for name in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL") if not environ.get(name)]
    if missing:
        return (
            f"labkit-grader: {' and '.join(missing)} not set (grader.yaml sets them from the hub's Secret and Service)"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    """``python -m labkit.classroom.hub_grader --state DIR --port N [--ip A] [--kubernetes-namespace NS]``."""
    args = parser().parse_args(argv)
    problem = start_problem(args, os.geteuid(), dict(os.environ))
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    pods = None
    if args.kubernetes_namespace is not None:
        # Here only: the single-server grader never loads the Kubernetes client.
        from labkit.classroom.hub_grader_k8s import PodExec

        pods = PodExec(args.kubernetes_namespace)
    grader = Grader(args.state, pods)
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", f"/services/{SERVICE}/")
    # the one instance: the OAuth callback handler finds it by HubOAuth.instance(), with the PKCE verifier it keeps
    app = make_app(grader, prefix, HubOAuth.instance(cache_max_age=60))
    server = HTTPServer(app, max_body_size=MAX_BODY)
    server.listen(args.port, args.ip)
    loop = IOLoop.current()

    def stop(*_: Any) -> None:
        grader.hub.close()
        server.stop()
        loop.add_callback_from_signal(loop.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    where = f" checks in pods in {args.kubernetes_namespace}" if pods is not None else ""
    print(f"labkit-grader: listening on {args.ip}:{args.port}{prefix}{where}", file=sys.stderr, flush=True)
    loop.start()
    grader.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
