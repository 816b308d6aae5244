"""Lesson 05's pure port logic: what the daemon bound, judged without a daemon."""

from __future__ import annotations

import pytest

from labkit.exercises import lesson05_running_containers as running


def test_bound_ports_drops_exposed_but_unpublished() -> None:
    raw = {
        "80/tcp": None,
        "8080/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8081"}, {"HostIp": "::", "HostPort": "8081"}],
    }
    assert running.bound_ports(raw) == {"8080/tcp": [("0.0.0.0", "8081"), ("::", "8081")]}
    assert running.bound_ports(None) == {}


def test_requested_random_port_reads_as_random() -> None:
    requested = running.bound_ports({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})
    assert running.describe_bindings(requested) == "80/tcp → host port random"


@pytest.mark.parametrize(
    "bindings",
    [
        {"80/tcp": [("0.0.0.0", "8080"), ("::", "8080")]},
        {"80/tcp": [("127.0.0.1", "8080")]},
        {"80/tcp": [("0.0.0.0", "8080")], "443/tcp": [("0.0.0.0", "8443")]},
    ],
)
def test_port_80_on_8080_is_right(bindings: running.Bindings) -> None:
    assert running.port_verdict(bindings) is None


def test_wrong_container_port() -> None:
    verdict = running.port_verdict({"8080/tcp": [("0.0.0.0", "8080")]})
    assert (
        verdict is not None
        and "forwards to port 8080/tcp" in verdict.message
        and "HOST:CONTAINER" in (verdict.hint or "")
    )


def test_other_host_port_and_publish_all() -> None:
    plain = running.port_verdict({"80/tcp": [("0.0.0.0", "9090")]})
    random = running.port_verdict({"80/tcp": [("0.0.0.0", "32768")]}, publish_all=True)
    assert plain is not None and "host port 9090, not on host port 8080" in plain.message
    assert random is not None and "-P" in random.message


def test_another_port_only_and_none() -> None:
    other = running.port_verdict({"443/tcp": [("0.0.0.0", "9443")]})
    nothing = running.port_verdict({})
    assert other is not None and "443/tcp → host port 9443" in other.message
    assert nothing is not None and "publishes no port" in nothing.message
    assert all("docker rm -f hello-docker-container" in (v.hint or "") for v in (other, nothing))
