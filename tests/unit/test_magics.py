"""%docker: the line reaches the shell untouched, with the expected exit code."""

from __future__ import annotations

from typing import Any

import pytest

from labkit.notebook import magics


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(magics, "sh", lambda command, expect=0: calls.append((command, expect)))
    return calls


def test_plain_line_expects_success(ran: list[tuple[str, Any]]) -> None:
    magics.docker_magic("run hello-world")
    assert ran == [("docker run hello-world", 0)]


@pytest.mark.parametrize(
    ("line", "expect"), [("--expect=125 run nosuch", 125), ("--expect 1 rm x", 1), ("--expect=any ps", None)]
)
def test_expected_code_is_declared_first(ran: list[tuple[str, Any]], line: str, expect: Any) -> None:
    magics.docker_magic(line)
    assert ran[0][1] == expect
    assert "--expect" not in ran[0][0]


def test_templates_are_not_expanded_by_ipython() -> None:
    from IPython.testing.globalipapp import get_ipython

    ip = get_ipython()
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


def test_a_labkit_error_fails_the_cell_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    from IPython.testing.globalipapp import get_ipython

    import labkit

    ip = get_ipython()
    assert ip is not None
    labkit.load_ipython_extension(ip)
    result = ip.run_cell("import labkit; raise labkit.LabkitError('the thing failed', 'do this')")
    assert not result.success and isinstance(result.error_in_exec, labkit.LabkitError)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "labkit:" in text and "the thing failed — do this" in text
    assert "Traceback" not in text
