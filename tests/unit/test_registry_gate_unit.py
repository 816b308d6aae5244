"""The registry's gate and login without a daemon or a registry: who may do what, tokens, the relay, the config.

The relay tests put the gate's connection handler between a socket pair and a tiny
registry stand-in on a unix socket that records what reached it; nothing is mocked.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from labkit.features.registry import credentials, gate, process
from labkit.features.registry.credentials import Credentials

LOGIN = Credentials("labkit-0123abcd", "right-password")
WRONG = Credentials("labkit-0123abcd", "wrong-password")
HUB = Credentials("someone", "docker-hub-password")  # a daemon passing its Docker Hub login on to the mirror
NOW = 1_800_000_000.0


def _grant(authorization: str, tokens: gate.Tokens | None = None) -> gate.Grant:
    return gate.grant_of(authorization, LOGIN, tokens or gate.Tokens(b"k" * 32), NOW)


# --- the decision ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    "target",
    [
        "/v2/library/busybox/manifests/latest",
        "/v2/library/busybox/blobs/sha256:" + "a" * 64,
        "/v2/_catalog?n=1000",
        "/v2/lab/x/tags/list",
    ],
)
@pytest.mark.parametrize("grant", ["none", "pull", "push"])
def test_reads_pass_with_any_login_or_none(method: str, target: str, grant: gate.Grant) -> None:
    assert gate.decide(method, target, grant) == "forward"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PROPFIND"])
@pytest.mark.parametrize(
    "target", ["/v2/library/busybox/blobs/uploads/", "/v2/library/busybox/manifests/latest", "/v2/", "/token"]
)
def test_writes_need_a_push_grant(method: str, target: str) -> None:
    assert gate.decide(method, target, "none") == "challenge"
    assert gate.decide(method, target, "pull") == "challenge"
    assert gate.decide(method, target, "push") == "forward"


def test_the_ping_challenges_only_without_a_valid_login() -> None:
    for target in ("/v2/", "/v2", "/v2/?x=1"):
        assert gate.decide("GET", target, "none") == "challenge"
        assert gate.decide("GET", target, "pull") == "forward"
        assert gate.decide("GET", target, "push") == "forward"
    assert gate.decide("HEAD", "/v2/", "none") == "challenge"


def test_the_token_endpoint_is_answered_by_the_gate() -> None:
    assert gate.decide("GET", "/token?service=labkit-registry&scope=repository:x:push,pull", "none") == "token"
    assert gate.decide("POST", "/token", "none") == "challenge"  # no OAuth: nothing to post


def test_what_an_authorization_header_grants() -> None:
    tokens = gate.Tokens(b"k" * 32)
    assert _grant(LOGIN.basic()) == "push"
    assert _grant("basic " + LOGIN.basic().split()[1]) == "push"  # the scheme is case-insensitive
    assert _grant(WRONG.basic()) == "none"
    assert _grant(HUB.basic()) == "none"
    assert _grant("") == "none"
    assert _grant("Basic !!not-base64") == "none"
    assert _grant("Basic " + base64.b64encode(b"no-colon").decode()) == "none"
    assert _grant("Bearer " + tokens.issue("push", NOW), tokens) == "push"
    assert _grant("Bearer " + tokens.issue("pull", NOW), tokens) == "pull"
    assert _grant("Bearer labkit.push.9999999999.forged", tokens) == "none"
    assert _grant("Bearer " + gate.Tokens(b"other-key" * 4).issue("push", NOW), tokens) == "none"
    assert _grant("Digest " + LOGIN.basic().split()[1]) == "none"


def test_tokens_expire_and_cannot_be_upgraded() -> None:
    tokens = gate.Tokens(b"k" * 32)
    pull = tokens.issue("pull", NOW)
    assert tokens.grant_of(pull, NOW + gate.TOKEN_LIFETIME - 1) == "pull"
    assert tokens.grant_of(pull, NOW + gate.TOKEN_LIFETIME + 1) == "none"
    body, _, mac = pull.rpartition(".")
    assert tokens.grant_of(body.replace(".pull.", ".push.") + "." + mac, NOW) == "none"
    assert tokens.grant_of(body.replace(str(int(NOW) + gate.TOKEN_LIFETIME), "9999999999") + "." + mac, NOW) == "none"
    assert tokens.grant_of("", NOW) == "none" and tokens.grant_of("labkit..", NOW) == "none"


def test_which_token_a_login_earns() -> None:
    assert gate.token_answer(LOGIN.basic(), LOGIN) == "push"
    assert gate.token_answer("", LOGIN) == "pull"
    assert gate.token_answer(WRONG.basic(), LOGIN) == "refuse"  # docker login with a wrong password fails
    assert gate.token_answer(HUB.basic(), LOGIN) == "pull"  # the mirror keeps working for a Docker Hub user
    assert gate.token_answer("Bearer whatever", LOGIN) == "pull"


def test_the_realm_follows_the_address_the_client_used() -> None:
    assert gate.realm("localhost:5000", 5000) == "http://localhost:5000/token"
    assert gate.realm("127.0.0.1:5055", 5055) == "http://127.0.0.1:5055/token"
    for odd in ('a"b', "a b", "", "x/y", "host:5000/evil"):
        assert gate.realm(odd, 5000) == "http://127.0.0.1:5000/token"


def test_the_challenge_is_what_docker_expects() -> None:
    raw = gate.challenge("http://localhost:5000/token", "authentication required")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 401 Unauthorized"
    assert 'WWW-Authenticate: Bearer realm="http://localhost:5000/token",service="labkit-registry"' in lines
    assert "Docker-Distribution-API-Version: registry/2.0" in lines
    assert f"Content-Length: {len(body)}" in lines and "Connection: close" in lines
    assert json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
    assert gate.challenge("http://x/token", "m", head_only=True).endswith(b"\r\n\r\n")


def test_a_token_reply_carries_no_refresh_token() -> None:
    raw = gate.token_reply("labkit.pull.1.x", NOW)
    body = json.loads(raw.partition(b"\r\n\r\n")[2])
    assert body["token"] == body["access_token"] == "labkit.pull.1.x"
    assert body["expires_in"] == gate.TOKEN_LIFETIME and "refresh_token" not in body


# --- the login -------------------------------------------------------------------------------


def test_credentials_are_made_once_and_kept_private(tmp_path: Path) -> None:
    path = tmp_path / "registry" / "auth" / "credentials.json"
    made = credentials.ensure(path)
    assert made.username.startswith("labkit-") and len(made.password) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    os.chmod(path, 0o644)
    os.chmod(path.parent, 0o755)
    assert credentials.ensure(path) == made  # the same login, and the modes tightened again
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert credentials.generate() != made
    assert made.password not in repr(made)


def test_a_damaged_credentials_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "credentials.json"
    path.parent.mkdir()
    path.write_text('{"username": "x"}')
    assert credentials.read(path) is None
    made = credentials.ensure(path)
    assert credentials.read(path) == made and stat.S_IMODE(path.stat().st_mode) == 0o600


def test_parse_basic_and_matches() -> None:
    assert credentials.parse_basic(LOGIN.basic()) == (LOGIN.username, LOGIN.password)
    assert credentials.parse_basic("Basic " + base64.b64encode(b"u:p:with:colons").decode()) == ("u", "p:with:colons")
    assert credentials.parse_basic("Bearer x") is None and credentials.parse_basic("Basic") is None
    assert LOGIN.matches(LOGIN.username, LOGIN.password)
    assert not LOGIN.matches(LOGIN.username, "") and not LOGIN.matches("", LOGIN.password)


def test_the_docker_cli_login_is_read_as_docker_reads_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = base64.b64encode(f"{LOGIN.username}:{LOGIN.password}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"localhost:5055": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert credentials.stored_login("localhost:5055") == LOGIN
    assert credentials.stored_login("127.0.0.1:5055") is None


def test_own_login_goes_only_to_the_course_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LABKIT_REGISTRY_PORT", "5055")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    made = credentials.ensure(process.credentials_file())
    assert process.push_login("127.0.0.1:5055") == made and process.push_login("localhost:5055") == made
    assert process.push_login("registry.example.com") is None
    assert process.push_login("127.0.0.1:5000") is None


# --- the config ------------------------------------------------------------------------------


def test_the_config_listens_on_a_unix_socket_only(tmp_path: Path) -> None:
    sock = tmp_path / "sock" / "registry.sock"
    config = yaml.safe_load(process.config_text(sock, tmp_path / "data"))
    assert "auth" not in config  # the gate checks pushes; the registry's own auth would refuse mirror pulls too
    assert config["http"]["addr"] == str(sock) and config["http"]["net"] == "unix"
    assert config["storage"]["filesystem"]["rootdirectory"] == str(tmp_path / "data")
    assert config["storage"]["delete"]["enabled"] is True
    assert "127.0.0.1" not in process.config_text(sock, tmp_path / "data").split("http:")[1]


def test_a_socket_path_too_long_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path / ("x" * 120)))
    with pytest.raises(process.LabkitError, match="too long"):
        process._prepare_socket(process.socket_path())


# --- the relay -------------------------------------------------------------------------------


class StandIn:
    """A registry stand-in on a unix socket: records each request's raw bytes, answers 200, closes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.received: list[bytes] = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                self.received.append(head + b"\r\n\r\n" + body)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def stand_in(tmp_path: Path) -> Iterator[StandIn]:
    upstream = StandIn(tmp_path / "r.sock")
    yield upstream
    upstream.close()


def _through_gate(stand_in: StandIn, request: bytes, head_timeout: float = 2.0) -> bytes:
    """Send ``request`` through the gate's handler and read the whole answer."""
    client, served = socket.socketpair()
    settings = gate.Settings(5055, stand_in.path, LOGIN, head_timeout)

    def serve() -> None:
        with served:  # as the gate's server does after each connection
            gate.serve_connection(served, settings, gate.Tokens())

    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    with client:
        client.settimeout(10)
        client.sendall(request)
        client.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    worker.join(5)
    return answer


def test_a_read_is_passed_on_with_connection_close_and_no_login(stand_in: StandIn) -> None:
    answer = _through_gate(
        stand_in,
        b"GET /v2/lab/x/tags/list HTTP/1.1\r\nHost: localhost:5055\r\nConnection: keep-alive\r\n"
        b"Authorization: Bearer whatever\r\n\r\n",
    )
    assert answer.endswith(b"ok")
    (seen,) = stand_in.received
    lines = seen.split(b"\r\n")
    assert lines[0] == b"GET /v2/lab/x/tags/list HTTP/1.1"
    assert b"Connection: close" in lines and b"connection: keep-alive" not in lines
    assert not [line for line in lines if line.lower().startswith(b"authorization")]
    assert b"host: localhost:5055" in lines


def test_a_push_with_the_login_streams_its_body(stand_in: StandIn) -> None:
    body = os.urandom(200_000)
    head = (
        f"PATCH /v2/lab/x/blobs/uploads/abc HTTP/1.1\r\nHost: 127.0.0.1:5055\r\nAuthorization: {LOGIN.basic()}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    assert _through_gate(stand_in, head + body).endswith(b"ok")
    (seen,) = stand_in.received
    assert seen.endswith(b"\r\n\r\n" + body)
    assert LOGIN.password.encode() not in seen and base64.b64encode(LOGIN.password.encode()) not in seen


def test_a_push_without_the_login_never_reaches_the_registry(stand_in: StandIn) -> None:
    for auth in ("", f"Authorization: {WRONG.basic()}\r\n", "Authorization: Bearer labkit.push.9999999999.x\r\n"):
        answer = _through_gate(
            stand_in,
            f"POST /v2/library/busybox/blobs/uploads/ HTTP/1.1\r\nHost: h\r\n{auth}Content-Length: 0\r\n\r\n".encode(),
        )
        assert answer.startswith(b"HTTP/1.1 401 ")
    assert stand_in.received == []


def test_a_second_request_on_the_connection_is_not_passed_on_separately(stand_in: StandIn) -> None:
    """A write smuggled behind an allowed read reaches the registry only as the read's trailing bytes."""
    smuggled = b"POST /v2/library/busybox/blobs/uploads/ HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
    answer = _through_gate(stand_in, b"GET /v2/_catalog HTTP/1.1\r\nHost: h\r\n\r\n" + smuggled)
    assert answer.count(b"HTTP/1.1 ") == 1
    # the registry got one head with Connection: close; Go's server answers it and closes
    assert stand_in.received[0].startswith(b"GET /v2/_catalog HTTP/1.1\r\n")
    assert b"\r\nConnection: close\r\n" in stand_in.received[0].split(b"\r\n\r\n")[0] + b"\r\n"


def test_the_token_endpoint_and_the_ping(stand_in: StandIn) -> None:
    refused = _through_gate(
        stand_in, f"GET /token HTTP/1.1\r\nHost: h\r\nAuthorization: {WRONG.basic()}\r\n\r\n".encode()
    )
    assert refused.startswith(b"HTTP/1.1 401 ")
    granted = _through_gate(
        stand_in, f"GET /token HTTP/1.1\r\nHost: h\r\nAuthorization: {LOGIN.basic()}\r\n\r\n".encode()
    )
    assert granted.startswith(b"HTTP/1.1 200 ") and b'"labkit.push.' in granted
    ping = _through_gate(stand_in, b"GET /v2/ HTTP/1.1\r\nHost: localhost:5055\r\n\r\n")
    assert ping.startswith(b"HTTP/1.1 401 ") and b'Bearer realm="http://localhost:5055/token"' in ping
    assert stand_in.received == []


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x00\xf0\x01\x00\x00\xec\x03\x03" + b"\x00" * 32,  # a TLS hello: Docker tries TLS first
        b"GET /v2/ HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n",
        b"GET /v2/ HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * (gate.MAX_HEAD + 10) + b"\r\n\r\n",
    ],
)
def test_what_is_not_http_gets_a_400(stand_in: StandIn, garbage: bytes) -> None:
    assert _through_gate(stand_in, garbage).startswith(b"HTTP/1.1 400 ")
    assert stand_in.received == []


def test_a_registry_that_does_not_answer_is_a_502(tmp_path: Path) -> None:
    client, served = socket.socketpair()
    settings = gate.Settings(5055, tmp_path / "nobody-listens.sock", LOGIN, 2.0)
    with client:
        client.sendall(b"GET /v2/_catalog HTTP/1.1\r\nHost: h\r\n\r\n")
        gate.serve_connection(served, settings, gate.Tokens())
        served.close()
        assert client.recv(65536).startswith(b"HTTP/1.1 502 ")
