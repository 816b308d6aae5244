"""deploy/kubernetes, validated without a cluster: the chart's own code runs on our values.

No Kubernetes runs here, so the test goes as far as a machine without one can:

1. our values, merged over the chart's defaults as helm merges them, validate against the
   chart's values schema (Zero to JupyterHub 4.4.0's, kept in tests/data/z2jh-4.4.0/ with
   its licence: the schema refuses unknown keys, so a misspelt one fails);
2. the chart's ``jupyterhub_config.py`` (same version) runs on them, as in the hub's pod,
   and the traitlets Config it builds loads into the installed KubeSpawner and JupyterHub:
   every key must be a configurable trait, every value of its type;
3. KubeSpawner builds the learner's pod from it: runtime class sysbox-runc, memory and CPU
   limits, nothing privileged;
4. the roles' scopes are JupyterHub's, the grader service and the culler are there;
5. the manifests (learners.yaml, grader.yaml) load into the Kubernetes client's models
   without losing a field, and the grader may exec in the learners' namespace only;
   grader.yaml's args parse with the grader's own parser and agree with its Service, its
   volume, the hub's service URL and the labs' ``LABKIT_HUB_GRADER``; the grader finds the
   pod KubeSpawner builds by its labels;
6. the single-user Dockerfile starts FROM a public image and names no registry of ours.

Each check returns the problems it found, so a mutated copy (``test_a_broken_copy_fails``)
shows that it would notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import importlib.util
import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

pytest.importorskip("kubespawner", reason="the `hub` extra (jupyterhub-kubespawner) is not installed")

from jupyterhub import scopes as hub_scopes
from jupyterhub.app import JupyterHub
from jupyterhub.auth import Authenticator
from jupyterhub.services.service import Service
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.config import kube_config
from kubespawner import KubeSpawner
from tornado.httpclient import AsyncHTTPClient
from traitlets.config import Config

from labkit.classroom import hub_grader, hub_grader_k8s
from labkit.classroom.hub_checks import grader_url

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
CHART = ROOT / "tests" / "data" / "z2jh-4.4.0"
RELEASE_NAMESPACE = "labkit"
LEARNERS_NAMESPACE = "labkit-learners"

#: FirstUseAuthenticator is in the chart's hub image, not in this venv: its configurable
#: traits as firstuseauthenticator 1.1.1 (the chart's pin) declares them.
FIRST_USE_TRAITS = {
    "dbm_path": str,
    "create_users": bool,
    "min_password_length": int,
    "check_passwords_on_startup": bool,
}
#: Keys a role may have (jupyterhub.roles).
ROLE_KEYS = {"name", "description", "scopes", "users", "services", "groups"}
#: Model names for the kinds our manifests use (kubernetes_asyncio's classes).
MODELS = {
    "Namespace": "V1Namespace",
    "Role": "V1Role",
    "RoleBinding": "V1RoleBinding",
    "ServiceAccount": "V1ServiceAccount",
    "NetworkPolicy": "V1NetworkPolicy",
    "PersistentVolumeClaim": "V1PersistentVolumeClaim",
    "Deployment": "V1Deployment",
    "Service": "V1Service",
}


# --- loading ---------------------------------------------------------------------------------


def load_values(path: Path = DEPLOY / "values.yaml") -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def helm_merge(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Values as helm merges them: maps merge, anything else replaces, null removes the key."""
    merged = copy.deepcopy(defaults)
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = helm_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def chart_values(values: dict[str, Any]) -> dict[str, Any]:
    return helm_merge(yaml.safe_load((CHART / "values.yaml").read_text()), values)


KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: none, user: {token: none}}]
contexts: [{name: none, context: {cluster: none, user: none}}]
current-context: none
"""


def hub_config(values: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Config:
    """The Config the chart's jupyterhub_config.py builds in the hub's pod from ``values``.

    KubeSpawner reads a cluster's address when it is made (never contacting it to build a
    pod's manifest): it gets one on the discard port, which nothing here ever calls.
    """
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    merged = chart_values(values)
    merged["Chart"] = {"Name": "jupyterhub", "Version": "4.4.0"}
    merged["Release"] = {"Name": "labkit", "Namespace": RELEASE_NAMESPACE}
    spec = importlib.util.spec_from_file_location("z2jh", CHART / "z2jh.py")
    assert spec is not None and spec.loader is not None
    z2jh = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(z2jh)
    # The chart mounts values and resource names as files; here they come from memory.
    monkeypatch.setattr(z2jh, "_load_config", lambda: copy.deepcopy(merged))
    monkeypatch.setattr(z2jh, "_get_config_value", lambda name: name)
    monkeypatch.setattr(z2jh, "get_secret_value", lambda key, default=None: "ab" * 32)  # hex, as the chart makes them
    monkeypatch.setitem(sys.modules, "z2jh", z2jh)
    monkeypatch.setattr(sys, "path", list(sys.path))
    # The chart picks the curl HTTP client process-wide; this process keeps its own.
    monkeypatch.setattr(AsyncHTTPClient, "configure", classmethod(lambda cls, *a, **k: None))
    for name, value in {
        "POD_NAMESPACE": RELEASE_NAMESPACE,
        "HUB_SERVICE_PORT": "8081",
        "PROXY_API_SERVICE_PORT": "8001",
    }.items():
        monkeypatch.setenv(name, value)
    cfg = Config()
    source = (CHART / "jupyterhub_config.py").read_text()
    namespace = {"get_config": lambda: cfg, "__file__": str(CHART / "jupyterhub_config.py"), "__name__": "__config__"}
    exec(compile(source, "jupyterhub_config.py", "exec"), namespace)
    return cfg


# --- checks: each returns the problems it found -----------------------------------------------


def schema_problems(values: dict[str, Any]) -> list[str]:
    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(chart_values(values))
    ]


def trait_problems(cfg: Config) -> list[str]:
    """Keys of the Config that are no configurable trait of their class."""
    classes: dict[str, Any] = {
        "KubeSpawner": KubeSpawner,
        "Spawner": KubeSpawner,
        "JupyterHub": JupyterHub,
        "Authenticator": Authenticator,
    }
    problems = []
    for section in cfg:
        if section == "FirstUseAuthenticator":
            for key, value in cfg[section].items():
                if key not in FIRST_USE_TRAITS and key not in Authenticator.class_trait_names(config=True):
                    problems.append(f"{section}.{key} is not a trait of FirstUseAuthenticator")
                elif key in FIRST_USE_TRAITS and not isinstance(value, FIRST_USE_TRAITS[key]):
                    problems.append(f"{section}.{key} should be a {FIRST_USE_TRAITS[key].__name__}")
            continue
        known = classes.get(section)
        if known is None:
            if section not in ("ConfigurableHTTPProxy", "CryptKeeper"):
                problems.append(f"hub.config section {section} is not validated by this test: add its class")
            continue
        names = set(known.class_trait_names(config=True))
        problems += [f"{section}.{key} is not a configurable trait" for key in cfg[section] if key not in names]
    return problems


def spawner(cfg: Config) -> KubeSpawner:
    """A KubeSpawner built from the Config; traitlets refuses a value of the wrong type here.

    KubeSpawner makes its API client on an event loop, so it is made inside one.
    """

    async def make() -> KubeSpawner:
        return KubeSpawner(config=cfg, _mock=True)

    return asyncio.run(make())


def pod_manifest(cfg: Config) -> dict[str, Any]:
    """The learner's pod as KubeSpawner would create it, as the API's JSON."""

    async def build() -> dict[str, Any]:
        pod = await KubeSpawner(config=cfg, _mock=True).get_pod_manifest()
        async with ApiClient() as client:
            result: dict[str, Any] = client.sanitize_for_serialization(pod)
        return result

    return asyncio.run(build())


def round_trip(doc: dict[str, Any], model: str) -> dict[str, Any]:
    """``doc`` read into the Kubernetes client's model (its own loader, as for an API answer) and back."""

    async def run() -> dict[str, Any]:
        async with ApiClient() as client:
            obj = client._ApiClient__deserialize(doc, model)
            result: dict[str, Any] = client.sanitize_for_serialization(obj)
        return result

    return asyncio.run(run())


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, f"{path}[{i}]")


def privileged_problems(node: Any, where: str) -> list[str]:
    return [
        f"{where}{path} is privileged" for path, value in walk(node) if path.endswith(".privileged") and value is True
    ]


def pod_problems(pod: dict[str, Any]) -> list[str]:
    problems = privileged_problems(pod, "the learner's pod")
    spec = pod["spec"]
    if spec.get("runtimeClassName") != "sysbox-runc":
        problems.append(f"runtimeClassName is {spec.get('runtimeClassName')!r}, not sysbox-runc")
    for container in spec["containers"]:
        caps = (container.get("securityContext") or {}).get("capabilities") or {}
        if caps.get("add"):
            problems.append(f"container {container['name']} adds capabilities {caps['add']}")
    notebook = spec["containers"][0]
    limits = (notebook.get("resources") or {}).get("limits") or {}
    for resource in ("memory", "cpu"):
        if resource not in limits:
            problems.append(f"the lab has no {resource} limit")
    if any("hostPath" in v for v in spec.get("volumes") or []):
        problems.append("the learner's pod mounts a host path")
    if spec.get("hostNetwork") or spec.get("hostPID"):
        problems.append("the learner's pod shares the node's network or pids")
    return problems


def role_problems(cfg: Config) -> list[str]:
    problems = []
    roles = {r["name"]: r for r in cfg.JupyterHub.load_roles}
    services = {s["name"]: s for s in cfg.JupyterHub.services}
    for role in roles.values():
        problems += [f"role {role['name']}: unknown key {k}" for k in set(role) - ROLE_KEYS]
        for scope in role.get("scopes", []):
            base = scope.split("!", 1)[0]
            if base not in hub_scopes.scope_definitions and base not in ("self", "inherit", "all"):
                problems.append(f"role {role['name']}: {scope} is not a JupyterHub scope")
        try:
            hub_scopes._check_scopes_exist(set(role.get("scopes", [])), who_for=f"role {role['name']}")
        except (KeyError, ValueError) as e:
            problems.append(f"role {role['name']}: {e}")
    service_traits = set(Service.class_trait_names())
    for service in services.values():
        problems += [f"service {service['name']}: {k} is no Service trait" for k in set(service) - service_traits]
    grader = services.get("labkit-grader")
    if grader is None:
        problems.append("no labkit-grader service")
    elif "labkit-grader" not in roles.get("labkit-grader", {}).get("services", []):
        problems.append("no role is granted to the labkit-grader service")
    wanted = "access:services!service=labkit-grader"
    if wanted not in roles.get("user", {}).get("scopes", []):
        problems.append(f"learners' role lacks {wanted}")
    if wanted not in (cfg.KubeSpawner.get("server_token_scopes") or []):
        problems.append(f"the lab's token lacks {wanted}")
    culler = services.get("jupyterhub-idle-culler")
    if culler is None or not any(a.startswith("--timeout=") for a in culler["command"]):
        problems.append("the idle culler is off")
    return problems


def manifest_problems(path: Path) -> list[str]:
    """Fields a model does not know (lost in a round trip), privileges, RBAC beyond its place."""
    problems = []
    for doc in yaml.safe_load_all(path.read_text()):
        if doc is None:
            continue
        kind = doc.get("kind")
        model = MODELS.get(kind)
        if model is None:
            problems.append(f"{path.name}: kind {kind} is not expected here")
            continue
        back = round_trip(doc, model)
        lost = {p for p, _ in walk(doc)} - {p for p, _ in walk(back)}
        problems += [f"{path.name}: {kind} {doc['metadata']['name']}: {p} is no field" for p in sorted(lost)]
        problems += privileged_problems(doc, f"{path.name}: {kind} ")
        if kind == "Role" and doc["metadata"].get("namespace") != LEARNERS_NAMESPACE:
            problems.append(f"{path.name}: Role {doc['metadata']['name']} outside {LEARNERS_NAMESPACE}")
    return problems


def grader_problems(docs: list[dict[str, Any]], values: dict[str, Any]) -> list[str]:
    """grader.yaml's command line against the grader's own parser, and the addresses that must agree with it."""
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    service = next(d for d in docs if d["kind"] == "Service")
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    if container["command"][1:] != ["-m", "labkit.classroom.hub_grader"]:
        return [f"the grader's command is {container['command']}, not python -m labkit.classroom.hub_grader"]
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = hub_grader.parser().parse_args(container["args"])
    except SystemExit:
        return [f"the grader refuses grader.yaml's args: {errors.getvalue().strip().splitlines()[-1]}"]
    problems = []
    if args.kubernetes_namespace != LEARNERS_NAMESPACE:
        problems.append(f"--kubernetes-namespace is {args.kubernetes_namespace}, not {LEARNERS_NAMESPACE}")
    if args.ip.startswith("127."):
        problems.append(f"--ip={args.ip}: the Service cannot reach a pod's loopback")
    env = {e["name"]: e.get("value", "(from a secret)") for e in container["env"]}
    problem = hub_grader.start_problem(args, spec["securityContext"]["runAsUser"], env)
    if problem:
        problems.append(problem)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    if ports.get(service["spec"]["ports"][0]["targetPort"]) != args.port:
        problems.append(f"the Service's target port is not the grader's --port={args.port}")
    if str(args.state) not in {m["mountPath"] for m in container["volumeMounts"]}:
        problems.append(f"--state={args.state} is not the state volume's mount")
    port = service["spec"]["ports"][0]["port"]
    name = service["metadata"]["name"]
    if values["hub"]["services"]["labkit-grader"]["url"] != f"http://{name}:{port}":
        problems.append("hub.services.labkit-grader.url is not the grader's Service")
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX", "")
    if prefix != f"/services/{hub_grader.SERVICE}/":
        problems.append(f"JUPYTERHUB_SERVICE_PREFIX is {prefix!r}, not the hub's path for the service")
    lab = urlsplit(grader_url(values["singleuser"]["extraEnv"]["LABKIT_HUB_GRADER"], "a.b"))
    if lab.netloc != f"{name}.{RELEASE_NAMESPACE}.svc:{port}" or lab.path != f"{prefix}check/a.b":
        problems.append(f"labs post checks to {lab.geturl()}, where the grader does not answer")
    return problems


FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)


def dockerfile_problems(text: str) -> list[str]:
    problems = []
    images = FROM.findall(text)
    if not images:
        problems.append("no FROM")
    for image in images:
        first = image.split("/", 1)[0]
        if "/" in image and ("." in first or ":" in first or first == "localhost"):
            problems.append(f"FROM {image} names a registry host: use a public image's plain name")
        if ":" not in image.rsplit("/", 1)[-1] and "@" not in image:
            problems.append(f"FROM {image} has no tag")
    for pattern in (r"127\.0\.0\.1:\d+", r"localhost:\d+", r"registry-mirror", r"--privileged"):
        if re.search(pattern, text):
            problems.append(f"the Dockerfile names {pattern}")
    for needed in ("docker.io", "labkit", "notebooks"):
        if needed not in text:
            problems.append(f"the Dockerfile does not install {needed}")
    return problems


# --- the tests ---------------------------------------------------------------------------------


@pytest.fixture
def cfg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Config:
    return hub_config(load_values(), monkeypatch, tmp_path)


def test_values_match_the_charts_schema() -> None:
    assert schema_problems(load_values()) == []


def test_the_charts_config_loads_into_kubespawner_and_jupyterhub(cfg: Config) -> None:
    assert trait_problems(cfg) == []
    spawn = spawner(cfg)
    assert spawn.namespace == LEARNERS_NAMESPACE
    assert spawn.hub_connect_url == f"http://hub.{RELEASE_NAMESPACE}.svc:8081"
    assert spawn.image == "labkit-singleuser:0.1.0"
    assert spawn.mem_limit == 2 * 1024**3 and spawn.cpu_limit == 2
    assert spawn.uid == 0
    assert spawn.cmd == ["jupyterhub-singleuser"]
    # The hub's traits, with every value checked by its type; the authenticator's class is
    # in the chart's hub image only, so it is checked by name.
    hub_cfg = copy.deepcopy(cfg)
    assert hub_cfg.JupyterHub.pop("authenticator_class") == "firstuseauthenticator.FirstUseAuthenticator"
    app = JupyterHub(config=hub_cfg)
    assert app.spawner_class is KubeSpawner
    assert {s["name"] for s in app.services} >= {"labkit-grader", "jupyterhub-idle-culler"}


def test_the_learners_pod_runs_under_sysbox_unprivileged_and_limited(cfg: Config) -> None:
    pod = pod_manifest(cfg)
    assert pod_problems(pod) == []
    assert pod["metadata"]["annotations"]["io.kubernetes.cri-o.userns-mode"] == "auto:size=65536"
    assert int(pod["spec"]["containers"][0]["resources"]["limits"]["memory"]) == 2 * 1024**3
    assert pod["spec"]["containers"][0]["securityContext"]["runAsUser"] == 0
    assert pod["spec"].get("initContainers") in (None, [])


def test_roles_scopes_grader_and_culler(cfg: Config) -> None:
    assert role_problems(cfg) == []
    culler = next(s for s in cfg.JupyterHub.services if s["name"] == "jupyterhub-idle-culler")
    assert "--timeout=3600" in culler["command"] and "--cull-every=300" in culler["command"]


@pytest.mark.parametrize("name", ["learners.yaml", "grader.yaml"])
def test_manifests_are_valid_and_unprivileged(name: str) -> None:
    assert manifest_problems(DEPLOY / name) == []


def test_the_grader_may_exec_in_learners_pods_only() -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "grader.yaml").read_text()) if d]
    roles = [d for d in docs if d["kind"] in ("Role", "ClusterRole")]
    assert [(r["kind"], r["metadata"]["namespace"]) for r in roles] == [("Role", LEARNERS_NAMESPACE)]
    rules = {res: set(rule["verbs"]) for rule in roles[0]["rules"] for res in rule["resources"]}
    assert rules == {"pods": {"get", "list"}, "pods/exec": {"create", "get"}}
    binding = next(d for d in docs if d["kind"] == "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "labkit-grader", "namespace": RELEASE_NAMESPACE}]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "hub",
        "key": "hub.services.labkit-grader.apiToken",
    }


def test_the_graders_args_are_its_options_and_agree_with_its_addresses() -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "grader.yaml").read_text()) if d]
    assert grader_problems(docs, load_values()) == []


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("--kubernetes-namespace=labkit-learners", "--kubernetes-namspace=labkit-learners"),
        ("--kubernetes-namespace=labkit-learners", "--kubernetes-namespace=labkit"),
        ('"--ip=0.0.0.0"', '"--ip=127.0.0.1"'),
        ("--port=8000", "--port=8080"),
        ("--state=/var/lib/labkit-grader", "--state=/tmp/grader"),
        ("value: /services/labkit-grader/\n", "value: /grader/\n"),
    ],
    ids=["misspelt-option", "wrong-namespace", "loopback", "port", "state", "prefix"],
)
def test_a_broken_grader_manifest_fails(change: str, why: str) -> None:
    text = (DEPLOY / "grader.yaml").read_text()
    assert text.count(change) == 1
    docs = [d for d in yaml.safe_load_all(text.replace(change, why)) if d]
    assert grader_problems(docs, load_values()), f"grader.yaml with {why} went unnoticed"


def test_a_labs_grader_address_without_the_prefix_fails() -> None:
    docs = [d for d in yaml.safe_load_all((DEPLOY / "grader.yaml").read_text()) if d]
    values = load_values()
    values["singleuser"]["extraEnv"]["LABKIT_HUB_GRADER"] = "http://labkit-grader.labkit.svc:8000"
    assert any("where the grader does not answer" in p for p in grader_problems(docs, values))


def test_the_grader_finds_the_pod_kubespawner_builds(cfg: Config) -> None:
    """KubeSpawner's pod from our values (its mock user is ``mock@name``, escaped in labels) answers the grader's selector."""
    pod = pod_manifest(cfg)
    name = pod["metadata"]["annotations"]["hub.jupyter.org/username"]
    assert name == "mock@name"
    wanted = dict(part.split("=", 1) for part in hub_grader_k8s.label_selector(name).split(","))
    assert wanted.items() <= pod["metadata"]["labels"].items()
    assert wanted["hub.jupyter.org/username"] != name  # escaped: '@' is no label character
    assert pod["spec"]["containers"][0]["name"] == hub_grader_k8s.CONTAINER
    pod["metadata"]["name"] = "jupyter-mock-name"
    pod["status"] = {
        "phase": "Running",
        "containerStatuses": [{"name": "notebook", "ready": True, "restartCount": 0, "image": "i", "imageID": ""}],
    }

    async def load() -> Any:
        async with ApiClient() as client:
            return client._ApiClient__deserialize(pod, "V1Pod")

    assert hub_grader_k8s.choose_pod(name, [asyncio.run(load())]) == "jupyter-mock-name"


def test_the_dockerfile_starts_from_a_public_image() -> None:
    text = (DEPLOY / "singleuser.Dockerfile").read_text()
    assert dockerfile_problems(text) == []
    assert FROM.findall(text) == ["debian:bookworm-slim"]
    image = load_values()["singleuser"]["image"]["name"]
    assert "/" not in image, f"values.yaml's image {image} names a registry: pass yours with --set"


def _mutated(change: str) -> dict[str, Any]:
    values = load_values()
    single = values["singleuser"]
    if change == "runc":
        single["extraPodConfig"]["runtimeClassName"] = "runc"
    elif change == "privileged":
        single["extraContainers"] = [{"name": "dind", "image": "docker:dind", "securityContext": {"privileged": True}}]
    elif change == "typo":
        single["memroy"] = single.pop("memory")
    elif change == "scope":
        values["hub"]["loadRoles"]["labkit-grader"]["scopes"].append("exec:pods")
    elif change == "trait":
        values["hub"]["config"]["KubeSpawner"]["server_token_scope"] = ["access:servers!server"]
    elif change == "no-culler":
        values["cull"]["enabled"] = False
    elif change == "no-limit":
        del single["memory"]["limit"]
    return values


@pytest.mark.parametrize("change", ["runc", "privileged", "typo", "scope", "trait", "no-culler", "no-limit"])
def test_a_broken_copy_fails(change: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy_path = tmp_path / "values.yaml"
    copy_path.write_text(yaml.safe_dump(_mutated(change)))
    values = load_values(copy_path)
    problems = schema_problems(values)
    cfg = hub_config(values, monkeypatch, tmp_path)
    problems += trait_problems(cfg) + role_problems(cfg) + pod_problems(pod_manifest(cfg))
    assert problems, f"breaking the values ({change}) went unnoticed"


def test_a_broken_dockerfile_fails() -> None:
    text = (DEPLOY / "singleuser.Dockerfile").read_text()
    assert dockerfile_problems(text.replace("FROM debian:bookworm-slim", "FROM 127.0.0.1:5000/debian:bookworm-slim"))
    assert dockerfile_problems(text.replace("FROM debian:bookworm-slim", "FROM debian"))
