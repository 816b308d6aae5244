"""The hub grader's Kubernetes mode, its pure parts: which pod, what command, what its output means.

No cluster runs here and none is faked: the pods are the Kubernetes client's own ``V1Pod``
objects, read from the API's JSON by the client's own loader (as an API answer is), the
exec's output is WebSocket frames as ``v4.channel.k8s.io`` sends them, and what the frames
carry is what ``labkit check --json`` really prints (run here, for the unknown exercise) or
its documented JSON. The end-to-end path (the API server, the exec, a pod) is not tested.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from labkit.core.errors import LabkitError

k8s = pytest.importorskip("labkit.classroom.hub_grader_k8s", reason="the `hub` extra (kubernetes_asyncio) is missing")
hub_grader = pytest.importorskip("labkit.classroom.hub_grader")
from kubernetes_asyncio.client import ApiClient  # noqa: E402  (after the skip above)
from kubespawner.slugs import is_valid_label, safe_slug  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GRADER_YAML = ROOT / "deploy" / "kubernetes" / "grader.yaml"

SUCCESS = json.dumps({"metadata": {}, "status": "Success"})


def exited(code: int) -> str:
    """The error channel's status for a command that exited ``code`` (what the kubelet sends)."""
    return json.dumps(
        {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command [timeout ...], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    )


def frames(stdout: str = "", stderr: str = "", status: str | None = SUCCESS) -> list[bytes]:
    out = [bytes([k8s.STDOUT]) + stdout.encode()] if stdout else []
    out += [bytes([k8s.STDERR]) + stderr.encode()] if stderr else []
    return out + ([bytes([k8s.ERROR]) + status.encode()] if status is not None else [])


def pod(
    name: str = "jupyter-ada",
    user: str = "ada",
    phase: str = "Running",
    ready: bool = True,
    terminating: bool = False,
    server: str | None = None,
) -> Any:
    """A learner's pod as the API answers it, read into ``V1Pod`` by the client's own loader."""
    annotations = {"hub.jupyter.org/username": user}
    if server is not None:
        annotations["hub.jupyter.org/servername"] = server
    doc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "labkit-learners",
            "labels": {
                "component": "singleuser-server",
                "hub.jupyter.org/username": safe_slug(user, is_valid=is_valid_label),
                "hub.jupyter.org/servername": safe_slug(server or "", is_valid=is_valid_label),
            },
            "annotations": annotations,
        },
        "spec": {"containers": [{"name": "notebook", "image": "labkit-singleuser:0.1.0"}]},
        "status": {
            "phase": phase,
            "containerStatuses": [
                {
                    "name": "notebook",
                    "ready": ready,
                    "restartCount": 0,
                    "image": "labkit-singleuser:0.1.0",
                    "imageID": "",
                }
            ],
        },
    }
    if terminating:
        doc["metadata"]["deletionTimestamp"] = "2025-12-01T05:00:00Z"

    async def load() -> Any:
        async with ApiClient() as client:
            return client._ApiClient__deserialize(doc, "V1Pod")

    return asyncio.run(load())


# --- which pod ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ada", "Ada.Lovelace", "ada@example.org", "émile", "a--b", "x" * 70])
def test_the_label_is_kubespawners_own_slug(name: str) -> None:
    assert k8s.username_label(name) == safe_slug(name, is_valid=is_valid_label)
    assert (
        k8s.label_selector(name) == f"component=singleuser-server,hub.jupyter.org/username={k8s.username_label(name)}"
    )
    assert is_valid_label(k8s.username_label(name))
    # (test_kubernetes_config.py matches it against the labels of the pod KubeSpawner builds from values.yaml)


def test_one_running_ready_pod_is_chosen() -> None:
    assert k8s.choose_pod("ada", [pod()]) == "jupyter-ada"
    # a terminating old pod beside the new one, and other users' or named servers' pods: not theirs
    pods = [
        pod("jupyter-ada-old", terminating=True),
        pod("jupyter-ada"),
        pod("jupyter-bob", user="bob"),
        pod("jupyter-ada--extra", server="extra"),
    ]
    assert k8s.choose_pod("ada", pods) == "jupyter-ada"


def test_a_shared_slug_is_told_apart_by_the_annotation() -> None:
    # "Ada" is a valid label as it is, and the hub keeps user names as typed: only the annotation tells them apart
    assert k8s.choose_pod("ada", [pod("jupyter-ada-2", user="Ada"), pod()]) == "jupyter-ada"


@pytest.mark.parametrize(
    ("pods", "why"),
    [
        ([], "ada has no lab running"),
        ([pod(user="bob")], "ada has no lab running"),
        ([pod(terminating=True)], "ada has no lab running"),
        ([pod(phase="Pending", ready=False)], "not ready yet (Pending)"),
        ([pod(ready=False)], "not ready yet (Running)"),
        ([pod("jupyter-ada"), pod("jupyter-ada-2")], "2 labs running (jupyter-ada, jupyter-ada-2)"),
    ],
    ids=["none", "someone-elses", "terminating", "pending", "not-ready", "several"],
)
def test_no_single_ready_pod_could_not_check(pods: list[Any], why: str) -> None:
    with pytest.raises(LabkitError) as caught:
        k8s.choose_pod("ada", pods)
    message = str(caught.value)
    assert message.startswith("could not check: ") and why in message and "\n" not in message
    assert caught.value.fix


# --- the command ------------------------------------------------------------------------------


def test_the_exec_runs_the_same_check_as_the_learner_without_the_graders_address() -> None:
    check = hub_grader.check_argv("run.publish-detach", "-rf", k8s.LAB_PYTHON)
    argv = k8s.exec_argv(check, 90)
    assert argv[:3] == ["timeout", "--kill-after=5", "90"]
    setpriv = argv[3 : argv.index("--") + 1]
    assert setpriv == ["setpriv", "--reuid=1000", "--regid=100", "--init-groups", "--"]
    env = argv[argv.index("--") + 1 : argv.index(k8s.LAB_PYTHON)]
    assert env == [
        "env",
        "-u",
        "LABKIT_HUB_GRADER",
        "-u",
        "JUPYTERHUB_API_TOKEN",
        "HOME=/home/jovyan",
        "USER=jovyan",
        "LOGNAME=jovyan",
    ]
    assert argv[len(argv) - len(check) :] == check
    assert check == [k8s.LAB_PYTHON, "-m", "labkit", "check", "run.publish-detach", "--json", "--answer=-rf"]


def test_the_learner_and_python_are_the_images() -> None:
    """The uid, gid, home and Python named here are the ones the learner's image makes."""
    deploy = ROOT / "deploy" / "kubernetes"
    dockerfile = (deploy / "singleuser.Dockerfile").read_text()
    start = (deploy / "labkit-learner-start.sh").read_text()
    assert f"useradd --create-home --uid {k8s.LEARNER_UID} --gid {k8s.LEARNER_GID}" in dockerfile
    assert f"{k8s.LEARNER}" in dockerfile
    assert f"LEARNER_UID={k8s.LEARNER_UID}" in start and f"LEARNER_GID={k8s.LEARNER_GID}" in start
    assert f"HOME_DIR={k8s.LEARNER_HOME}" in start
    assert "python3 -m venv /opt/labkit/venv" in dockerfile and k8s.LAB_PYTHON == "/opt/labkit/venv/bin/python"
    assert "util-linux" in dockerfile  # setpriv; timeout and env are coreutils, in every Debian image


# --- the exec's output: the same answers as on one server ----------------------------------------


def verdict(passed: bool) -> str:
    return json.dumps({"exercise": "a.b", "title": "T", "passed": passed, "message": "m", "hint": None, "evidence": {}})


def through_pod(out: list[bytes]) -> Any:
    """What the grader answers for these frames: the verdict, or the LabkitError's line."""
    try:
        done = k8s.completed(["x"], out, 90)
        return hub_grader.result_from_run(done.returncode, done.stdout, done.stderr)
    except LabkitError as e:
        return str(e)


def on_server(returncode: int, stdout: str, stderr: str) -> Any:
    try:
        return hub_grader.result_from_run(returncode, stdout, stderr)
    except LabkitError as e:
        return str(e)


@pytest.mark.parametrize(
    ("code", "stdout", "stderr"),
    [
        (0, verdict(True), ""),
        (1, verdict(False), ""),
        (1, "", "Traceback (most recent call last):\n  File \"x\", line 1\nKeyError: 'boom'\n"),
        (2, "", "labkit: the daemon did not answer — start it\n"),
        (0, "not json", ""),
    ],
    ids=["passed", "not-yet", "traceback", "could-not", "garbage"],
)
def test_the_pods_output_gets_the_same_answer_as_on_one_server(code: int, stdout: str, stderr: str) -> None:
    status = SUCCESS if code == 0 else exited(code)
    assert through_pod(frames(stdout, stderr, status)) == on_server(code, stdout, stderr)


def test_an_unknown_exercise_as_labkit_really_prints_it() -> None:
    """The real ``labkit check`` (this checkout's) on an exercise it does not know: exit 2, one line."""
    done = subprocess.run(
        [sys.executable, "-m", "labkit", "check", "no.such-exercise", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 2
    pod_answer = through_pod(frames(done.stdout, done.stderr, exited(done.returncode)))
    assert pod_answer == on_server(done.returncode, done.stdout, done.stderr)
    assert pod_answer.startswith("could not check: ") and "no.such-exercise" in pod_answer


def test_stdout_and_stderr_are_kept_apart_and_split_frames_joined() -> None:
    text = verdict(True)
    out = [
        bytes([k8s.STDOUT]) + text[:10].encode(),
        bytes([k8s.STDERR]) + b"warn\n",
        bytes([k8s.STDOUT]) + text[10:].encode(),
    ]
    done = k8s.completed(["x"], [*out, bytes([k8s.ERROR]) + SUCCESS.encode()], 90)
    assert (done.returncode, done.stdout, done.stderr) == (0, text, "warn\n")


@pytest.mark.parametrize("code", [124, 137])
def test_the_deadline_in_the_pod_is_a_timeout(code: int) -> None:
    with pytest.raises(subprocess.TimeoutExpired):
        k8s.completed(["x"], frames("", "", exited(code)), 90)


def test_a_timeout_is_the_same_could_not_check_in_both_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    """``run_check`` turns the runner's TimeoutExpired into one line, whichever runner it was."""

    class SlowPods:
        python = k8s.LAB_PYTHON

        async def run(self, name: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
            raise subprocess.TimeoutExpired(argv, timeout)

    def slow_server(name: str, argv: list[str]) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(argv, hub_grader.CHECK_TIMEOUT)

    monkeypatch.setattr(hub_grader, "run_on_server", slow_server)
    answers = []
    for pods in (SlowPods(), None):
        with pytest.raises(LabkitError) as caught:
            asyncio.run(hub_grader.run_check("ada", "a.b", None, pods))
        answers.append(str(caught.value))
    assert answers[0] == answers[1]
    assert answers[0].startswith("could not check: the check took over 90 s — try again")


@pytest.mark.parametrize(
    ("out", "why"),
    [
        (frames(verdict(True), status=None), "ended without the check's exit status"),
        (
            frames(
                status=json.dumps(
                    {
                        "status": "Failure",
                        "reason": "InternalError",
                        "message": 'exec: "timeout": executable file not found in $PATH',
                    }
                )
            ),
            'did not run in the lab\'s pod (exec: "timeout": executable file not found',
        ),
        (frames(status="not json"), "did not run in the lab's pod (not json)"),
    ],
    ids=["no-status", "not-run", "garbled-status"],
)
def test_an_exec_that_did_not_run_the_check_could_not_check(out: list[bytes], why: str) -> None:
    with pytest.raises(LabkitError) as caught:
        k8s.completed(["x"], out, 90)
    assert str(caught.value).startswith("could not check: ") and why in str(caught.value)


def test_output_is_capped() -> None:
    big = bytes([k8s.STDOUT]) + b"x" * (k8s.MAX_OUTPUT + 10)
    done = k8s.completed(["x"], [big, big, bytes([k8s.ERROR]) + SUCCESS.encode()], 90)
    assert len(done.stdout) == k8s.MAX_OUTPUT


def test_outside_a_cluster_the_pod_runner_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(LabkitError, match="no Kubernetes service account here"):
        asyncio.run(k8s.PodExec("labkit-learners").run("ada", ["true"], 5))


# --- the command line and the manifest ----------------------------------------------------------


def grader_args() -> list[str]:
    docs = [d for d in yaml.safe_load_all(GRADER_YAML.read_text()) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][1:] == ["-m", "labkit.classroom.hub_grader"]
    return list(container["args"])


def test_the_options_parse() -> None:
    args = hub_grader.parser().parse_args(["--state=/s", "--port=8000"])
    assert (args.ip, args.kubernetes_namespace) == ("127.0.0.1", None)
    args = hub_grader.parser().parse_args(["--state=/s", "--port=1", "--ip=0.0.0.0", "--kubernetes-namespace", "ns"])
    assert (args.state, args.port, args.ip, args.kubernetes_namespace) == (Path("/s"), 1, "0.0.0.0", "ns")


def test_the_manifests_args_are_the_graders_options() -> None:
    args = hub_grader.parser().parse_args(grader_args())
    assert args.kubernetes_namespace == "labkit-learners"
    assert args.ip == "0.0.0.0" and args.port == 8000
    env = {"JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_API_URL": "http://hub:8081/hub/api"}
    assert hub_grader.start_problem(args, 1000, env) is None  # grader.yaml runs it as uid 1000


def test_the_grader_refuses_to_start_without_what_it_needs() -> None:
    on_server_args = hub_grader.parser().parse_args(["--state=/s", "--port=1"])
    assert "runs as root" in (hub_grader.start_problem(on_server_args, 1000, {}) or "")
    assert hub_grader.start_problem(on_server_args, 0, {}) is None
    in_pod = hub_grader.parser().parse_args(grader_args())
    assert "JUPYTERHUB_API_TOKEN and JUPYTERHUB_API_URL not set" in (hub_grader.start_problem(in_pod, 1000, {}) or "")
    with pytest.raises(SystemExit):
        hub_grader.parser().parse_args(["--state=/s", "--port=1", "--kubernetes-namespace"])
