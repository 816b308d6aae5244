"""Lesson 05: running containers — publish, detach, list, name, rename.

``run.publish-detach`` reads the container called ``hello-docker-container``: its
image, its state, the ports the daemon actually bound for it, and the page on host
port 8080. It never reads the command line, so ``docker run`` or ``docker container
run``, ``-p`` or ``--publish``, ``-d`` or ``-dp``, any option order, ``--rm`` or not,
and a ``127.0.0.1:`` or ``0.0.0.0:`` host address all pass alike.

``run.rename`` follows the container its setup started by ID (it also carries the
exercise's label), so it knows that container under whatever name it has now, and
tells a rename apart from a new container created under the new name.

Host port 8080 is this lesson's alone: JupyterLab takes 8888, the course's registry
5000, and lesson 07 uses 8081.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Mapping
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from labkit.core import engine, http, wait
from labkit.core.errors import HttpUnreachable, WaitTimeout
from labkit.core.i18n import N_, _
from labkit.core.probes import is_image, port_publishers
from labkit.exercises.machinery.catalog import register
from labkit.exercises.machinery.model import Context, Exercise, Verdict, not_yet, passed
from labkit.exercises.machinery.runner import exercise_labels

LESSON = "05"
IMAGE = "labkit/hello-dock"
NAME = "hello-docker-container"
RENAMED = "hello-docker-container2"
HOST_PORT = 8080
#: The port hello-dock's web server listens on inside the container.
CONTAINER_PORT = "80/tcp"
URL = f"http://127.0.0.1:{HOST_PORT}/"
#: Text only the lab's page carries: a 200 from some other server is not the exercise.
PAGE_MARK = "Hello, Docker!"
#: A server started a moment ago may need a breath before it answers; never longer than this.
PAGE_TIMEOUT = 5.0
#: Host addresses a browser on this machine reaches through 127.0.0.1 ("" is the daemon's default, all).
_LOCAL_ADDRESSES = frozenset({"", "0.0.0.0", "127.0.0.1", "::", "::1"})

#: The command the hints name (one of many that pass).
RUN_COMMAND = f"docker run --detach --publish {HOST_PORT}:80 --name {NAME} {IMAGE}"

Bindings = dict[str, list[tuple[str, str]]]


# --- small readers of live state -------------------------------------------------------------


def named(client: docker.DockerClient, name: str) -> Container | None:
    """The container called exactly ``name`` (not an ID prefix), or ``None``."""
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        return None
    return container if container.name == name else None


def bound_ports(raw: Mapping[str, Any] | None) -> Bindings:
    """``NetworkSettings.Ports`` (or ``HostConfig.PortBindings``) as ``{"80/tcp": [(ip, port)]}``.

    Exposed but unpublished ports (``null``) are left out.

    Example:
        >>> bound_ports({"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": None})
        {'80/tcp': [('0.0.0.0', '8080')]}
    """
    result: Bindings = {}
    for container_port, hosts in (raw or {}).items():
        pairs = [(str(h.get("HostIp") or ""), str(h.get("HostPort") or "")) for h in hosts or []]
        if pairs:
            result[container_port] = pairs
    return result


def describe_bindings(bindings: Bindings) -> str:
    """``80/tcp → host 8080`` for messages; one entry per container port, host ports deduplicated.

    Example:
        >>> describe_bindings({"80/tcp": [("0.0.0.0", "8080"), ("::", "8080")]})
        '80/tcp → host port 8080'
    """
    parts = []
    for container_port, hosts in sorted(bindings.items()):
        ports = sorted({port or _("random") for _unused, port in hosts})
        parts.append(
            _("{container_port} → host port {ports}").format(container_port=container_port, ports=", ".join(ports))
        )
    return "; ".join(parts) if parts else _("no ports")


def host_port_holders(client: docker.DockerClient, port: int, exclude: str = "") -> list[str]:
    """Names of the running containers (other than ``exclude``, an ID) that publish host ``port``."""
    return sorted({name for cid, name in port_publishers(client).get(port, []) if cid != exclude})


def fetch(url: str, timeout: float = 2.0) -> tuple[int | None, str]:
    """The HTTP status and body ``url`` answers with; ``(None, reason)`` when nothing answers."""
    try:
        answer = http.request("GET", url, timeout=timeout, limit=65536)
    except HttpUnreachable as e:
        return None, e.cause
    return answer.status, answer.body.decode(errors="replace") if 200 <= answer.status < 300 else ""


def page(url: str = URL, timeout: float | None = None) -> tuple[int | None, str]:
    """Wait (up to ``timeout``, default :data:`PAGE_TIMEOUT`) for ``url`` to answer 200 with the lab's page.

    Returns:
        The last answer: status (``None`` when nothing answered) and body (or why nothing answered).
    """
    timeout = PAGE_TIMEOUT if timeout is None else timeout
    last: list[tuple[int | None, str]] = [(None, "")]

    def answered() -> bool:
        last[0] = fetch(url)
        return last[0][0] == 200 and PAGE_MARK in last[0][1]

    with contextlib.suppress(WaitTimeout):  # the last answer says what went wrong
        wait.until(answered, f"{url} to serve the lab's page", timeout=timeout)
    return last[0]


# --- run.publish-detach ------------------------------------------------------------------------


def port_verdict(bindings: Bindings, publish_all: bool = False) -> Verdict | None:
    """Judge a running container's live port bindings; ``None`` when 80/tcp is on host 8080.

    The pure part of the check: it sees only what the daemon bound.

    Example:
        >>> port_verdict({"80/tcp": [("0.0.0.0", "8080")]}) is None
        True
        >>> port_verdict({}).message
        'hello-docker-container is running, but publishes no port: nothing outside the container can reach its web server.'
    """
    wanted = str(HOST_PORT)
    to_wanted = sorted(cport for cport, hosts in bindings.items() if any(port == wanted for _, port in hosts))
    seen = describe_bindings(bindings)
    redo = _(
        "Ports are fixed when a container is created: remove this one (`docker rm -f {name}`) and run a new one."
    ).format(name=NAME)
    if CONTAINER_PORT in to_wanted:
        return None
    if to_wanted:
        return not_yet(
            _(
                "Host port {host_port} forwards to port {to_wanted} inside {name}, but the web server listens on "
                "port 80."
            ).format(host_port=HOST_PORT, to_wanted=to_wanted[0], name=NAME),
            _(
                "--publish reads HOST:CONTAINER: the second number is the port inside the container, where the "
                "web server listens. {redo}"
            ).format(redo=redo),
            ports=seen,
        )
    if CONTAINER_PORT in bindings:
        others = ", ".join(sorted({port for _, port in bindings[CONTAINER_PORT]}))
        if publish_all:
            return not_yet(
                _(
                    "{name} publishes port 80 on host port {others}, a port Docker picked at random (--publish-all / "
                    "-P), not on host port 8080."
                ).format(name=NAME, others=others),
                _("-P picks free host ports for you; --publish lets you choose the host port yourself. {redo}").format(
                    redo=redo
                ),
                ports=seen,
            )
        return not_yet(
            _("{name} publishes port 80 on host port {others}, not on host port {host_port}.").format(
                name=NAME, others=others, host_port=HOST_PORT
            ),
            _(
                "The first number of --publish is the host port, the one a browser on this machine connects to. {redo}"
            ).format(redo=redo),
            ports=seen,
        )
    if bindings:
        return not_yet(
            _("{name} publishes {seen}, but not the web server's port 80 on host port {host_port}.").format(
                name=NAME, seen=seen, host_port=HOST_PORT
            ),
            _(
                "hello-dock's server listens on port 80 inside the container: that is the port to publish on "
                "host port {host_port}. {redo}"
            ).format(host_port=HOST_PORT, redo=redo),
            ports=seen,
        )
    return not_yet(
        _("{name} is running, but publishes no port: nothing outside the container can reach its web server.").format(
            name=NAME
        ),
        _(
            "Without --publish (-p) nothing outside the container reaches it; the option takes the host port "
            "first, the container port second. {redo}"
        ).format(redo=redo),
        ports=seen,
    )


def _no_such_container(client: docker.DockerClient) -> Verdict:
    """No container has the name: say what is there instead, if anything is close."""
    names = [(c.attrs.get("Names") or ["/"])[0].lstrip("/") for c in client.containers.list(all=True, sparse=True)]
    close = difflib.get_close_matches(NAME, [n for n in names if n != RENAMED], n=1, cutoff=0.85)
    if close:
        return not_yet(
            _("There is no container named {name}, but there is one named {close}.").format(name=NAME, close=close[0]),
            _(
                "Names must match exactly. A container can be renamed (`docker container rename`), or removed and run "
                "again with the right name."
            ),
        )
    holders = host_port_holders(client, HOST_PORT)
    if holders:
        holder = named(client, holders[0])
        if holder is not None and is_image(client, holder, IMAGE):
            return not_yet(
                _(
                    "A labkit/hello-dock container publishes host port {host_port}, but it is called {holders}, not "
                    "{name}."
                ).format(host_port=HOST_PORT, holders=holders[0], name=NAME),
                _(
                    "Without --name, Docker makes up a name. Give this one the right name (`docker container rename`), "
                    "or remove it and run it again, named."
                ),
            )
        return not_yet(
            _("There is no container named {name}, and host port {host_port} is taken by container {holders}.").format(
                name=NAME, host_port=HOST_PORT, holders=holders[0]
            ),
            _(
                "Only one container can publish a host port: stop or remove {holders} first, if it is yours to remove."
            ).format(holders=holders[0]),
        )
    return not_yet(
        _("There is no container named {name} yet.").format(name=NAME),
        _(
            "`docker run` needs three things here: keep the container in the background, forward host port 8080 to "
            "the server's port 80 inside it, and give it its name. Which option does each?"
        ),
    )


def _not_running(client: docker.DockerClient, container: Container) -> Verdict:
    """The container exists but is not running: why, as far as the daemon can tell."""
    state = container.attrs.get("State", {})
    status = state.get("Status")
    requested = bound_ports(container.attrs.get("HostConfig", {}).get("PortBindings"))
    asks_right = any(port == str(HOST_PORT) for _, port in requested.get(CONTAINER_PORT, []))
    fix = (
        _("start it: `docker start {name}`").format(name=NAME)
        if asks_right
        else _("its ports are wrong too ({ports}), so remove it (`docker rm {name}`) and run a new one").format(
            ports=describe_bindings(requested), name=NAME
        )
    )
    if status == "created":
        holders = host_port_holders(client, HOST_PORT, exclude=container.id)
        if asks_right and holders:
            return not_yet(
                _(
                    "{name} was created but could not start: host port {host_port} is already published by container "
                    "{holders}."
                ).format(name=NAME, host_port=HOST_PORT, holders=holders[0]),
                _(
                    "A host port belongs to one container at a time. Remove {holders} (`docker rm -f {holders}`), "
                    "then `docker start {name}`."
                ).format(holders=holders[0], name=NAME),
                status=status,
            )
        return not_yet(
            _("{name} was created but never started.").format(name=NAME),
            _("`docker create` only prepares a container (and a failed start leaves one behind); {fix}.").format(
                fix=fix
            ),
            status=status,
        )
    if status == "exited":
        return not_yet(
            _("{name} exists, but it has stopped (exited with code {exit_code}).").format(
                name=NAME, exit_code=state.get("ExitCode")
            ),
            _(
                "Did it run in the foreground and stop when you interrupted it? --detach (-d) keeps it running "
                "in the background. To get it back, {fix}."
            ).format(fix=fix),
            status=status,
        )
    if status == "paused":
        return not_yet(
            _("{name} is paused.").format(name=NAME),
            _("Resume it: `docker unpause {name}`.").format(name=NAME),
            status=status,
        )
    return not_yet(
        _("{name} is {status}, not running.").format(name=NAME, status=status),
        _("Look at `docker container ls --all` and `docker logs {name}`; then {fix}.").format(name=NAME, fix=fix),
        status=status,
    )


def _check_publish_detach(ctx: Context) -> Verdict:
    client = ctx.client
    container = named(client, NAME)
    if container is None:
        return _no_such_container(client)
    if not is_image(client, container, IMAGE):
        shown = container.attrs.get("Config", {}).get("Image") or _("another image")
        return not_yet(
            _("{name} runs {shown}, not {image}.").format(name=NAME, shown=shown, image=IMAGE),
            _(
                "The image is the last word before any command. Remove this one (`docker rm -f {name}`) and run "
                "a new one from {image}."
            ).format(name=NAME, image=IMAGE),
            image=shown,
        )
    if container.status != "running":
        return _not_running(client, container)
    bindings = bound_ports(container.attrs.get("NetworkSettings", {}).get("Ports"))
    publish_all = bool(container.attrs.get("HostConfig", {}).get("PublishAllPorts"))
    verdict = port_verdict(bindings, publish_all)
    if verdict is not None:
        return verdict
    status, body = page()
    ports = describe_bindings({CONTAINER_PORT: bindings[CONTAINER_PORT]})
    if status != 200 or PAGE_MARK not in body:
        addresses = sorted({ip for ip, port in bindings[CONTAINER_PORT] if port == str(HOST_PORT)})
        elsewhere = [ip for ip in addresses if ip not in _LOCAL_ADDRESSES]
        if status == 200:
            got = _("it answers HTTP 200, but with another page")
        elif status is not None:
            got = f"HTTP {status}"
        else:
            got = _("no answer ({reason})").format(reason=body or _("nothing listening"))
        return not_yet(
            _(
                "{name} publishes port 80 on host port {host_port}, but {url} did not serve the lab's page: {got}."
            ).format(name=NAME, host_port=HOST_PORT, url=URL, got=got),
            _(
                "It is bound to {addresses} only, which this machine's 127.0.0.1 does not reach: publish on "
                "every address, or on 127.0.0.1."
            ).format(addresses=", ".join(elsewhere))
            if elsewhere and len(elsewhere) == len(addresses)
            else _("Read what the server says: `docker logs {name}`.").format(name=NAME),
            ports=ports,
            http=got,
        )
    return passed(
        _(
            "{name} runs {image} in the background, its port 80 is published on host port {host_port}, and "
            "{url} answers with the lab's page."
        ).format(name=NAME, image=IMAGE, host_port=HOST_PORT, url=URL),
        status="running",
        ports=ports,
        http=200,
    )


PUBLISH_DETACH = register(
    Exercise(
        id="run.publish-detach",
        lesson=LESSON,
        title=N_("Publish a port, run in the background"),
        prompt=N_("Run labkit/hello-dock in the background as hello-docker-container, reachable on host port 8080."),
        check=_check_publish_detach,
        hints=(
            (
                N_(
                    "Three options do it: one keeps the container in the background, one forwards a host port "
                    "into the container, one names it."
                )
            ),
            N_(
                "--detach (-d) runs it in the background; --publish 8080:80 (host:container) forwards host port 8080 "
                "to the server's port 80; --name hello-docker-container names it."
            ),
            N_("Type: docker run --detach --publish 8080:80 --name hello-docker-container labkit/hello-dock"),
        ),
        solution=(RUN_COMMAND,),
        names=(NAME,),
    )
)


# --- run.rename --------------------------------------------------------------------------------


def _setup_rename(ctx: Context) -> dict[str, Any]:
    """Start a hello-dock container with a name Docker makes up; report that name and the ID."""
    with engine.converted(IMAGE):
        container = ctx.client.containers.run(IMAGE, detach=True, labels=exercise_labels(ctx.exercise))
    wait.container_running(container)
    return {"container": container.name, "id": container.id}


def _check_rename(ctx: Context) -> Verdict:
    client = ctx.client
    info = ctx.setup or {}
    if not info.get("id"):
        return not_yet(
            _("There is no container to rename yet: the exercise's setup has not run."),
            _(
                'Run `labkit.setup("run.rename")` (in a terminal: `labkit exercise setup run.rename`); it starts the container '
                "you will rename."
            ),
        )
    try:
        mine: Container | None = client.containers.get(info["id"])
    except docker.errors.NotFound:
        mine = None
    target = named(client, RENAMED)
    new_one = target is not None and (mine is None or target.id != mine.id)
    if mine is None:
        return not_yet(
            _("The container setup started is gone, and {renamed} is a different, new container.").format(
                renamed=RENAMED
            )
            if new_one
            else _("The container setup started is gone."),
            _(
                "Renaming keeps the same container: same ID, new name. Run the setup again to get a container to rename."
            ),
        )
    if mine.name == RENAMED:
        return passed(
            _("The container setup started (same ID) is now named {renamed}.").format(renamed=RENAMED),
            id=mine.id[:12],
            status=mine.status,
        )
    original = info.get("container")
    if new_one:
        return not_yet(
            (
                _("{renamed} is a new container, not the one setup started, which still has its generated name {name}.")
                if mine.name == original
                else _("{renamed} is a new container, not the one setup started, which has the name {name}.")
            ).format(renamed=RENAMED, name=mine.name),
            _(
                "`docker run --name` creates another container; this exercise renames the existing one. Remove "
                "the new one (`docker rm -f {renamed}`) first: a name belongs to one container at a time."
            ).format(renamed=RENAMED),
            id=mine.id[:12],
        )
    if mine.name == original:
        return not_yet(
            _("The container setup started still has its generated name {name}.").format(name=mine.name),
            _(
                "A container keeps its ID for life, but its name can change. Which `docker container` command "
                "gives it a new one?"
            ),
            id=mine.id[:12],
        )
    return not_yet(
        _("You renamed the right container, but to {name}, not {renamed}.").format(name=mine.name, renamed=RENAMED),
        _("Close: compare the spelling with {renamed}, and rename it once more.").format(renamed=RENAMED),
        id=mine.id[:12],
    )


RENAME = register(
    Exercise(
        id="run.rename",
        lesson=LESSON,
        title=N_("Rename a container"),
        prompt=N_("Setup started a container with a generated name: rename that container to hello-docker-container2."),
        check=_check_rename,
        hints=(
            (
                N_(
                    "A container keeps its ID for life, but its name can change. Find the current name in the NAMES column "
                    "of `docker container ls` (or in what setup printed)."
                )
            ),
            N_(
                "`docker container rename CURRENT-NAME NEW-NAME` (short form: `docker rename`). Don't run a new container."
            ),
            N_("Type: docker container rename <the generated name> hello-docker-container2"),
        ),
        solution=(f"docker container rename {{container}} {RENAMED}",),
        setup=_setup_rename,
        names=(RENAMED,),
    )
)
