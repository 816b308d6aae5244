"""Lesson 04: the client, the daemon, and the REST API between them.

``api.endpoint`` asks for the API call behind ``docker create``. ``api.trace``
puts labkit's recording proxy (:mod:`labkit.trace`) in front of the daemon and
reads its log: it passes when one container was created (201), started (204) and
waited for, all through the proxy.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import docker.errors

from labkit.core.i18n import N_, _
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.features import trace

LESSON = "04"
ENDPOINT = "POST /containers/create"
#: The proxy's socket for a shell, without Python: the same rule as ``labkit.paths.state_dir()``.
SOCKET_IN_SHELL = "${LABKIT_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/labkit}/trace/docker.sock"

# --- api.endpoint ---------------------------------------------------------------------

_URL_PREFIX = re.compile(r"^(?:https?|unix)://[^/]*", re.IGNORECASE)
_VERSION = re.compile(r"^/v\d+(?:\.\d+)?(?=/)", re.IGNORECASE)


def split_answer(answer: str) -> tuple[str, str]:
    """``"post  /v1.41/containers/create?name=x"`` → ``("POST", "/containers/create")``.

    The method is upper-cased (empty when none was given); the path loses a URL's
    scheme and host, the ``/v1.NN`` prefix, its query and a trailing slash.

    Example:
        >>> split_answer(" post http://localhost/v1.41/Containers/create/?name=web ")
        ('POST', '/containers/create')
    """
    words = answer.strip().strip("`'\"").split()
    method = ""
    if len(words) >= 2 and words[0].isalpha() and not words[0].lower().startswith("docker"):
        method, words = words[0].upper(), words[1:]
    path = "".join(words)
    path = _URL_PREFIX.sub("", path)
    path = path.split("?", 1)[0].split("#", 1)[0]
    path = _VERSION.sub("", path).rstrip("/").lower()
    if path and not path.startswith("/"):
        path = "/" + path
    return method, path


def _endpoint(ctx: Context) -> Verdict:
    answer = ctx.answer or ""
    text = " ".join(answer.split()).lower()
    if text.startswith("docker "):
        return not_yet(
            _("{answer!r} is a CLI command, not the API call it makes.").format(answer=answer.strip()),
            _(
                "The CLI turns `docker container create` into an HTTP request to the daemon: an HTTP method and a path, like `GET /containers/json`."
            ),
        )
    method, path = split_answer(answer)
    if path == "/containers/create":
        if method == "POST":
            return passed(
                _("Yes: the CLI creates a container with {endpoint}.").format(endpoint=ENDPOINT),
                answer=f"{method} {path}",
            )
        if not method:
            return not_yet(
                _("The path is right, but an API call also has an HTTP method."),
                _("Creating something in a REST API is usually a POST; write it as `METHOD /path`."),
            )
        return not_yet(
            _("The path is right, but the method is not {method}.").format(method=method),
            _("GET only reads; the CLI sends a JSON description of the new container, and creating is a POST."),
        )
    if path.startswith("/images/create"):
        return not_yet(
            _("/images/create is the pull: the CLI calls it when the daemon has no such image."),
            _("Look for the call that makes the container itself, right after the pull in the trace."),
        )
    if re.fullmatch(r"/containers/[^/]+/start", path):
        return not_yet(
            _("That is the start call: it runs a container that already exists."),
            _("Before it can be started, the container must be created: which call does that?"),
        )
    return not_yet(
        _("{answer!r} is not the call that creates a container.").format(answer=answer.strip()),
        _(
            "Look at step 5 in the trace of `docker run hello-world`: write its method and path, e.g. `GET /containers/json`."
        ),
    )


ENDPOINT_EXERCISE = register(
    Exercise(
        id="api.endpoint",
        lesson=LESSON,
        title=N_("The API call behind docker create"),
        prompt=N_(
            "Which HTTP method and path does the docker CLI call to create a container? Answer as `METHOD /path`."
        ),
        check=_endpoint,
        hints=(
            N_("Every CLI command becomes an HTTP request: a method (GET, POST, …) and a path."),
            N_("In the trace, it is the call that answered 404 before the pull and 201 after it."),
            N_("POST /containers/create"),
        ),
        reference_answer=lambda ctx: ENDPOINT,
    )
)

# --- api.trace ------------------------------------------------------------------------


def _refers_to(segment: str, container_id: str, name: str | None) -> bool:
    """Whether a path segment names this container: its id, an id prefix, or its name."""
    if segment == name:
        return True
    return len(segment) >= 4 and container_id.startswith(segment.lower())


def _subject(call: trace.Call, action: str) -> str | None:
    """The container a ``POST /containers/X/<action>`` call is about, or None."""
    match = re.fullmatch(rf"(?:/v\d+\.\d+)?/containers/([^/?]+)/{action}", call.path.split("?", 1)[0])
    return match.group(1) if call.method == "POST" and match else None


def _created_name(call: trace.Call) -> str | None:
    for pair in call.query.split("&"):
        key, _, value = pair.partition("=")
        if key == "name" and value:
            return value
    return None


def _host() -> str:
    current = trace.status()
    return current.docker_host if current.running else f"unix://{trace.socket_path()}"


def _trace(ctx: Context) -> Verdict:
    log = (ctx.setup or {}).get("log") or trace.log_path()
    calls = trace.load(log)
    running = trace.status().running
    host = _host()
    if not calls:
        if not running:
            return not_yet(
                _("The trace proxy is not running, and no API call was recorded."),
                _(
                    'Start it with labkit.setup("api.trace") (or `labkit exercise setup api.trace`), then run docker with DOCKER_HOST set to the socket it names.'
                ),
            )
        return not_yet(
            _("The proxy is running, but no API call went through it yet."),
            _(
                "Your docker commands still go to the daemon's own socket, so the proxy sees nothing. Which "
                "environment variable tells the CLI where the daemon is? The proxy listens at {host}."
            ).format(host=host),
        )
    creates = [c for c in calls if c.method == "POST" and c.route == "/containers/create"]
    if not creates:
        seen = ", ".join(sorted({f"{c.method} {c.route}" for c in calls if c.route != "/_ping"})) or _("only pings")
        return not_yet(
            _("{n_calls} API calls went through the proxy, but none created a container (seen: {seen}).").format(
                n_calls=len(calls), seen=seen
            ),
            _(
                "Commands like `docker ps` only read. Which command creates a container, starts it and waits for it? "
                "Send that one through the proxy."
            ),
            calls=len(calls),
        )
    made = [c for c in creates if c.status is not None and 200 <= c.status < 300 and c.id]
    if not made:
        last = creates[-1]
        reason = f"{last.status} {last.message or last.reason}".strip()
        if last.status == 404:
            return not_yet(
                _("The create call failed: {reason}.").format(reason=reason),
                _(
                    "The daemon does not have that image. `docker run` pulls it and creates again; `docker create --pull=never` does not. Offline, `labkit registry up` serves the course's images."
                ),
                calls=len(calls),
            )
        return not_yet(
            _("The create call failed: {reason}.").format(reason=reason),
            _(
                "Read the error the CLI printed (a name already taken? a typo in an option?), fix it and run again through the proxy."
            ),
            calls=len(calls),
        )
    progress: list[tuple[int, str]] = []
    for create in made:
        cid, name = str(create.id), _created_name(create)
        started = any(
            (s := _subject(c, "start")) and _refers_to(s, cid, name) and c.status is not None and c.status < 400
            for c in calls
        )
        waited = any((s := _subject(c, "wait")) and _refers_to(s, cid, name) for c in calls)
        if started and waited:
            return passed(
                _("Through the proxy: container {cid} was created (201), started (204) and waited for.").format(
                    cid=cid[:12]
                ),
                container=cid[:12],
                calls=len(calls),
            )
        progress.append((2 if started else 1, cid))
    best, cid = max(progress)
    if best == 2:
        return not_yet(
            _(
                "Container {cid} was created and started through the proxy, but the CLI never asked to wait for it."
            ).format(cid=cid[:12]),
            _(
                "That is a detached run (`docker run -d`): the CLI returns as soon as the container starts. Run it in the foreground, without -d, so the CLI waits for the exit."
            ),
            container=cid[:12],
            calls=len(calls),
        )
    return not_yet(
        _("Container {cid} was created through the proxy but never started.").format(cid=cid[:12]),
        _(
            "`docker create` stops after the create call. One command creates, starts and waits; or start "
            "this one through the proxy with its output attached (`docker start -a {cid}`)."
        ).format(cid=cid[:12]),
        container=cid[:12],
        calls=len(calls),
    )


def _setup_trace(ctx: Context) -> dict[str, Any]:
    proxy = trace.start()
    return {"docker_host": proxy.docker_host, "socket": proxy.socket, "log": proxy.log}


def _teardown_trace(ctx: Context) -> None:
    """Remove the containers created through the proxy, then stop it and delete its socket and log."""
    for call in trace.load():
        if call.method == "POST" and call.route == "/containers/create" and call.id:
            with contextlib.suppress(docker.errors.NotFound):
                ctx.client.api.remove_container(call.id, force=True, v=True)
    trace.stop(remove_log=True)


TRACE_EXERCISE = register(
    Exercise(
        id="api.trace",
        lesson=LESSON,
        title=N_("Watch docker run through a recording proxy"),
        prompt=(
            N_(
                "Setup starts labkit's recording proxy and names its socket. Run a container in the "
                "foreground with DOCKER_HOST pointing at that socket, so create, start and wait go through it."
            )
        ),
        check=_trace,
        setup=_setup_trace,
        teardown=_teardown_trace,
        hints=(
            N_("The CLI connects wherever DOCKER_HOST says: set it to the proxy's unix:// address for one command."),
            N_("Prefix the command: `DOCKER_HOST=unix://<socket> docker run …`, in the foreground (no -d)."),
            N_(
                "DOCKER_HOST=unix://${LABKIT_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/labkit}/trace/docker.sock "
                "docker run --rm hello-world"
            ),
        ),
        solution=(f"DOCKER_HOST=unix://{SOCKET_IN_SHELL} docker run --rm hello-world",),
    )
)
