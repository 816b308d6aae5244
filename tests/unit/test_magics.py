"""%docker: the line reaches the shell untouched, with the expected exit code."""

from __future__ import annotations

from typing import Any

import pytest

from labkit import magics


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(magics, "sh", lambda command, expect=0: calls.append((command, expect)))
    return calls


def test_plain_line_expects_success(ran: list[tuple[str, Any]]) -> None:
    magics.docker_magic("run hello-world")
    assert ran == [("docker run hello-world", 0)]


@pytest.mark.parametrize(("line", "expect"), [("--expect=125 run nosuch", 125), ("--expect 1 rm x", 1), ("--expect=any ps", None)])
def test_expected_code_is_declared_first(ran: list[tuple[str, Any]], line: str, expect: Any) -> None:
    magics.docker_magic(line)
    assert ran[0][1] == expect
    assert "--expect" not in ran[0][0]


def test_templates_are_not_expanded_by_ipython() -> None:
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    assert ip is not None
    magics.register(ip)
    seen: list[str] = []
    original = magics.sh
    magics.sh = lambda command, expect=0: seen.append(command)  # type: ignore[assignment]
    try:
        ip.run_line_magic("docker", 'ps --format "{{.Names}}"')
    finally:
        magics.sh = original  # type: ignore[assignment]
    assert seen == ['docker ps --format "{{.Names}}"']
