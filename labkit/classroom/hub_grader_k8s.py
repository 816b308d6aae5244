"""The hub grader on Kubernetes: a learner's check run in their own pod, through the Kubernetes API.

On one server the grader runs ``labkit check ID --json`` as the learner with
:func:`~labkit.classroom.learner_engine.run_as`. On Kubernetes (``deploy/kubernetes/``)
the learner's daemon and files are in their pod, so :mod:`.hub_grader`, started with
``--kubernetes-namespace NS``, hands the same command to :class:`PodExec`:

1. the learner's pod is found in ``NS`` by the labels KubeSpawner puts on it
   (``component=singleuser-server``, ``hub.jupyter.org/username=`` KubeSpawner's own
   ``safe_slug`` of the name) and confirmed by its ``hub.jupyter.org/username`` annotation,
   which KubeSpawner writes unescaped: a slug may be shared by two names, the annotation not.
   Exactly one pod of the learner's default server must be running, not terminating, with
   its ``notebook`` container ready; otherwise "could not check" says which;
2. the command runs in that container through ``pods/exec`` (a WebSocket, channel protocol
   ``v4.channel.k8s.io``), with the service account's in-cluster credentials;
3. stdout, stderr and the exit code come back as a ``CompletedProcess`` (or
   ``subprocess.TimeoutExpired``), as from ``run_as``, and the grader reads them with the same
   :func:`~labkit.classroom.hub_grader.result_from_run` as on one server.

**Who the check runs as.** An exec runs as the container's user, not as the lab's process:
the chart starts the learner's container as uid 0 (``singleuser.uid: 0``, so its entry point
can start dockerd), which under Sysbox is root of the pod's own user namespace. So the
command drops to the learner first, as the entry point does for the lab: ``setpriv`` to
``jovyan`` (uid 1000, gid 100, with its groups, ``docker`` among them). The check then reads
what the learner may read and asks the pod's daemon as the learner does. The exec'd process
is the container's, in its cgroup (the pod's limits hold), but no child of the lab.

**What the check does not get.** An exec gets the container's environment, which holds
``LABKIT_HUB_GRADER`` and the lab's ``JUPYTERHUB_API_TOKEN``: with them ``labkit check``
would ask the grader again instead of checking. Both are removed (``env -u``).

**A deadline inside the pod.** Closing an exec's stream does not stop the command in the
container, so the command runs under coreutils' ``timeout``: after ``timeout`` seconds it is
stopped (``KILL`` 5 s later), and the grader stops waiting a little after that.

This module is imported only in that mode: the single-server grader never loads the
Kubernetes client.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.stream import WsApiClient
from kubespawner.slugs import is_valid_label, safe_slug

from labkit.core.errors import LabkitError

#: KubeSpawner's labels on a learner's pod (``component_label``, and the user's slug).
COMPONENT = "singleuser-server"
USERNAME_LABEL = "hub.jupyter.org/username"
#: KubeSpawner's annotations: the raw user name, and the server's name (absent for the default server).
USERNAME_ANNOTATION = "hub.jupyter.org/username"
SERVERNAME_ANNOTATION = "hub.jupyter.org/servername"
#: KubeSpawner's name for the lab's container.
CONTAINER = "notebook"
#: The learner in the pod, as singleuser.Dockerfile and labkit-learner-start.sh make them.
LEARNER = "jovyan"
LEARNER_UID = 1000
LEARNER_GID = 100
LEARNER_HOME = "/home/jovyan"
#: labkit's Python in the learner's image (singleuser.Dockerfile).
LAB_PYTHON = "/opt/labkit/venv/bin/python"
#: What the check must not inherit from the container (it would ask the grader instead of checking).
UNSET = ("LABKIT_HUB_GRADER", "JUPYTERHUB_API_TOKEN")
#: Seconds between the deadline's TERM and KILL in the pod, and the grader's own margin after that.
KILL_AFTER = 5
MARGIN = 10.0
#: Most bytes kept of each of stdout and stderr (a verdict is a few hundred).
MAX_OUTPUT = 1024 * 1024
#: The exec channels (``v4.channel.k8s.io``).
STDOUT, STDERR, ERROR = 1, 2, 3
#: The exit code coreutils' ``timeout`` gives a command it stopped (TERM, or KILL after --kill-after).
TIMED_OUT = (124, 137)


# --- the pod (pure) ---------------------------------------------------------------------------


def username_label(name: str) -> str:
    """The value of KubeSpawner's ``hub.jupyter.org/username`` label for ``name`` (its own ``safe_slug``).

    Example:
        >>> username_label("ada"), username_label("ada@example.org")
        ('ada', 'ada-example-org---cfe00dde')
    """
    return str(safe_slug(name, is_valid=is_valid_label))


def label_selector(name: str) -> str:
    """The label selector of ``name``'s lab pods.

    Example:
        >>> label_selector("ada")
        'component=singleuser-server,hub.jupyter.org/username=ada'
    """
    return f"component={COMPONENT},{USERNAME_LABEL}={username_label(name)}"


def _ready(pod: Any) -> bool:
    statuses = (pod.status.container_statuses if pod.status else None) or []
    return any(s.name == CONTAINER and s.ready for s in statuses)


def choose_pod(name: str, pods: Iterable[Any]) -> str:
    """The name of ``name``'s one running lab pod among ``pods`` (the API's ``V1Pod`` objects).

    Pods of other users (a shared slug), of a named server, or terminating are not theirs
    to check; a pod that is pending or whose lab is not ready yet is not checkable yet.

    Raises:
        LabkitError: "could not check": no such pod, not ready, or more than one.
    """
    theirs = [
        p
        for p in pods
        if (p.metadata.annotations or {}).get(USERNAME_ANNOTATION) == name
        and SERVERNAME_ANNOTATION not in (p.metadata.annotations or {})
        and p.metadata.deletion_timestamp is None
    ]
    if not theirs:
        raise LabkitError(f"could not check: {name} has no lab running", "start your server from the hub")
    running = [p for p in theirs if p.status is not None and p.status.phase == "Running" and _ready(p)]
    if not running:
        phases = ", ".join(sorted({str(p.status.phase if p.status else None) for p in theirs}))
        raise LabkitError(
            f"could not check: {name}'s lab is not ready yet ({phases})", "wait until the lab has started, then check"
        )
    if len(running) > 1:
        names = ", ".join(sorted(p.metadata.name for p in running))
        raise LabkitError(
            f"could not check: {name} has {len(running)} labs running ({names})",
            "ask the instructor to stop the extra one",
        )
    return str(running[0].metadata.name)


def exec_argv(argv: Sequence[str], timeout: float) -> list[str]:
    """``argv`` (the check) as the pod runs it: under a deadline, as the learner, without the grader's address.

    Example:
        >>> exec_argv(["python", "-m", "labkit"], 90)[:8]
        ['timeout', '--kill-after=5', '90', 'setpriv', '--reuid=1000', '--regid=100', '--init-groups', '--']
    """
    unset = [part for variable in UNSET for part in ("-u", variable)]
    return [
        "timeout",
        f"--kill-after={KILL_AFTER}",
        f"{timeout:.0f}",
        "setpriv",
        f"--reuid={LEARNER_UID}",
        f"--regid={LEARNER_GID}",
        "--init-groups",
        "--",
        "env",
        *unset,
        f"HOME={LEARNER_HOME}",
        f"USER={LEARNER}",
        f"LOGNAME={LEARNER}",
        *argv,
    ]


# --- the exec's output (pure) -----------------------------------------------------------------


def exit_code(status: str) -> int:
    """The command's exit code from the exec's error channel (a ``v1.Status`` in JSON).

    Raises:
        LabkitError: the command did not run (no such program, the container gone …).

    Example:
        >>> exit_code('{"metadata": {}, "status": "Success"}')
        0
        >>> exit_code('{"status": "Failure", "reason": "NonZeroExitCode", '
        ...           '"details": {"causes": [{"reason": "ExitCode", "message": "1"}]}}')
        1
    """
    try:
        data = json.loads(status)
        if data.get("status") == "Success":
            return 0
        if data.get("reason") == "NonZeroExitCode":
            causes = data.get("details", {}).get("causes", [])
            return next(int(c["message"]) for c in causes if c.get("reason") == "ExitCode")
        message = str(data.get("message") or data.get("reason") or status)
    except (ValueError, AttributeError, TypeError, KeyError, StopIteration):
        message = status
    raise LabkitError(
        f"could not check: the check did not run in the lab's pod ({message.strip()[:300]})", "read the grader's log"
    )


@dataclass
class _Streams:
    stdout: bytearray
    stderr: bytearray
    status: str | None = None

    def add(self, frame: bytes) -> None:
        if not frame:
            return
        channel, data = frame[0], frame[1:]
        if channel == ERROR:
            self.status = (self.status or "") + data.decode("utf-8", "replace")
            return
        buffer = self.stdout if channel == STDOUT else self.stderr if channel == STDERR else None
        if buffer is not None and len(buffer) < MAX_OUTPUT:
            buffer += data[: MAX_OUTPUT - len(buffer)]


def completed(argv: Sequence[str], frames: Iterable[bytes], timeout: float) -> subprocess.CompletedProcess[str]:
    """What an exec printed and how it ended, from its WebSocket frames (a channel byte, then data).

    Raises:
        subprocess.TimeoutExpired: the deadline in the pod stopped the check (as ``subprocess.run`` would).
        LabkitError: the stream ended without an exit status, or the command did not run.

    Example:
        >>> done = completed(["x"], [b"\\x01{}", b'\\x03{"status": "Success"}'], 90)
        >>> done.returncode, done.stdout
        (0, '{}')
    """
    streams = _Streams(bytearray(), bytearray())
    for frame in frames:
        streams.add(frame)
    if streams.status is None:
        raise LabkitError("could not check: the exec stream ended without the check's exit status", "try again")
    code = exit_code(streams.status)
    if code in TIMED_OUT:
        raise subprocess.TimeoutExpired(list(argv), timeout)
    return subprocess.CompletedProcess(
        list(argv), code, streams.stdout.decode("utf-8", "replace"), streams.stderr.decode("utf-8", "replace")
    )


# --- the Kubernetes API -----------------------------------------------------------------------


async def _frames(ws: AsyncIterable[Any]) -> list[bytes]:
    """The exec's frames as they came; past :data:`MAX_OUTPUT` per stream only the exit status is kept."""
    frames: list[bytes] = []
    kept = 0
    async for message in ws:
        if message.type == aiohttp.WSMsgType.ERROR:
            raise LabkitError(f"could not check: the exec stream broke ({message.data})", "try again")
        if message.type not in (aiohttp.WSMsgType.BINARY, aiohttp.WSMsgType.TEXT):
            continue
        data = message.data.encode("utf-8") if isinstance(message.data, str) else bytes(message.data)
        if data[:1] == bytes([ERROR]) or kept < 2 * MAX_OUTPUT:
            frames.append(data)
            kept += len(data)
    return frames


class PodExec:
    """Runs a command as the learner in their lab's pod in ``namespace`` (the grader's service account).

    The credentials are read at each check (``load_incluster_config``), so a rotated
    service-account token is picked up.

    Args:
        namespace: the learners' namespace (``labkit-learners``).
    """

    python = LAB_PYTHON

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def _configuration(self) -> client.Configuration:
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except config.ConfigException as e:
            raise LabkitError(
                f"could not check: no Kubernetes service account here ({e})",
                "run the grader in the cluster (deploy/kubernetes/grader.yaml), or without --kubernetes-namespace",
            ) from e
        return configuration

    async def find(self, name: str, configuration: client.Configuration) -> str:
        """The name of ``name``'s one ready lab pod (:func:`choose_pod`)."""
        async with client.ApiClient(configuration) as api:
            pods = await client.CoreV1Api(api).list_namespaced_pod(self.namespace, label_selector=label_selector(name))
        return choose_pod(name, pods.items)

    async def run(self, name: str, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as ``name`` in their pod; never raises on the command's exit code.

        The same contract as :func:`~labkit.classroom.learner_engine.run_as` (``subprocess.run``'s).

        Raises:
            subprocess.TimeoutExpired: the check ran out of time.
            LabkitError: "could not check": no credentials, no such pod, the API refused or
                failed, or the command did not run.
        """
        configuration = self._configuration()
        command = exec_argv(argv, timeout)
        try:
            async with asyncio.timeout(timeout + KILL_AFTER + MARGIN):
                pod = await self.find(name, configuration)
                async with WsApiClient(configuration) as ws_api:
                    # typed for one command word; WsApiClient sends a list as repeated ``command=``, and
                    # with _preload_content=False answers the WebSocket's context manager, not a str
                    exec_api: Any = client.CoreV1Api(ws_api)
                    connect = await exec_api.connect_get_namespaced_pod_exec(
                        pod,
                        self.namespace,
                        container=CONTAINER,
                        command=command,
                        stdin=False,
                        stdout=True,
                        stderr=True,
                        tty=False,
                        _preload_content=False,
                    )
                    async with connect as ws:
                        frames = await _frames(ws)
        except TimeoutError as e:
            raise subprocess.TimeoutExpired(command, timeout) from e
        except client.ApiException as e:
            raise LabkitError(
                f"could not check: the Kubernetes API answered {e.status} {e.reason}",
                "read the grader's log; its Role in the learners' namespace must allow pods get, list and pods/exec",
            ) from e
        except aiohttp.WSServerHandshakeError as e:
            raise LabkitError(
                f"could not check: the Kubernetes API refused the exec ({e.status} {e.message})",
                "read the grader's log; its Role in the learners' namespace must allow pods/exec create and get",
            ) from e
        except (aiohttp.ClientError, OSError) as e:
            raise LabkitError(f"could not check: the Kubernetes API did not answer ({e})", "try again") from e
        return completed(command, frames, timeout)
