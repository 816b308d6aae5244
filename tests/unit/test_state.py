"""labkit.core.state: whole-file writes, appended lines and damaged files, on a real file system (no daemon)."""

from __future__ import annotations

import json
import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from labkit.core import state
from labkit.core.errors import DamagedState, LabkitError


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_json_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    state.write_json(target, {"b": 1, "a": [1, 2]})
    state.write_json(target, {"b": 2})
    assert json.loads(target.read_text()) == {"b": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_new_file_gets_the_mode_asked_for_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    new = tmp_path / "new.json"
    state.write_json(new, {}, mode=0o600)
    assert _mode(new) == 0o600
    old = tmp_path / "old.json"
    old.write_text("{}")
    old.chmod(0o640)
    state.write_json(old, {"x": 1}, mode=0o600)
    assert _mode(old) == 0o640


def test_without_a_mode_a_new_file_follows_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        state.write_bytes(tmp_path / "f", b"x")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "f") == 0o640


def test_an_error_while_writing_keeps_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_text('{"old": true}')
    with pytest.raises(RuntimeError), state.replacing(target) as f:
        f.write(b'{"new": ')
        raise RuntimeError("cut short")
    assert target.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    with pytest.raises(TypeError):
        state.write_json(target, {"x": object()})
    assert target.read_text() == '{"old": true}'


def test_an_appended_line_never_glues_onto_a_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"n": 1}\n{"n": 2, "cut sho')
    state.append_json_line(path, {"n": 3})
    state.append_json_line(path, {"n": 4})
    lines = state.read_json_lines(path)
    assert lines.records == [{"n": 1}, {"n": 3}, {"n": 4}]
    assert lines.damaged == ['{"n": 2, "cut sho']


def test_a_new_lines_file_is_private(tmp_path: Path) -> None:
    state.append_json_line(tmp_path / "p.jsonl", {"n": 1})
    assert _mode(tmp_path / "p.jsonl") == 0o600


def _append_many(path: str, lock: str | None, writer: int) -> None:
    for n in range(200):
        state.append_json_line(
            Path(path),
            {"writer": writer, "n": n, "pad": "x" * 500},
            lock=None if lock is None else Path(lock),
            fsync=False,
        )


@pytest.mark.parametrize("own_lock", [False, True], ids=["file lock", "lock file"])
def test_processes_appending_at_once_never_interleave_lines(tmp_path: Path, own_lock: bool) -> None:
    path = tmp_path / "p.jsonl"
    lock = str(tmp_path / "p.lock") if own_lock else None
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(path), lock, w)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    lines = state.read_json_lines(path)
    assert lines.damaged == []
    assert sorted((r["writer"], r["n"]) for r in lines.records) == [(w, n) for w in range(4) for n in range(200)]


def test_read_json_lines_keeps_what_accept_takes(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "a"}\n[]\nnull\n{"id": 5}\n\n{"id": "b"}\n{"id": "c"')

    def accept(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            raise TypeError("not an event")
        return value

    lines = state.read_json_lines(path, accept)
    assert [r["id"] for r in lines.records] == ["a", "b"]
    assert lines.damaged == ["[]", "null", '{"id": 5}', '{"id": "c"']
    assert state.read_json_lines(tmp_path / "missing.jsonl") == state.Lines()


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"it holds {state.describe(value)}, not an object")
    return value


def test_read_json_gives_the_default_for_a_missing_file(tmp_path: Path) -> None:
    assert state.read_json(tmp_path / "none.json", _dict, default={"fresh": True}) == {"fresh": True}


@pytest.mark.parametrize(
    "text, problem",
    [
        ("[]", "it holds a list"),
        ("null", "it holds null"),
        ('"x"', "it holds a string"),
        ('{"a": ', "not JSON"),
        ("", "empty"),
        (b"\xff\xfe", "not JSON"),
    ],
    ids=["list", "null", "string", "truncated", "empty", "not utf-8"],
)
def test_a_damaged_file_moves_aside_and_says_so_in_one_line(tmp_path: Path, text: str | bytes, problem: str) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(DamagedState) as caught:
        state.read_json(path, _dict, default={})
    error = caught.value
    assert problem in str(error) and "\n" not in str(error)
    assert error.moved_to is not None and Path(error.moved_to).name.startswith("s.json.damaged-")
    assert Path(error.moved_to).read_bytes() == path.with_name(Path(error.moved_to).name).read_bytes()
    assert not path.exists()
    assert state.read_json(path, _dict, default={}) == {}


def test_aside_names_never_overwrite_an_earlier_one(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    seen = set()
    for n in range(3):
        path.write_text(str(n) + "[")
        seen.add(state.set_aside(path))
    assert len(seen) == 3 and all(p is not None and p.exists() for p in seen)


def test_an_unreadable_file_is_one_line_not_an_oserror(tmp_path: Path) -> None:
    folder = tmp_path / "s.json"
    folder.mkdir()  # reading a folder fails with EISDIR, whoever runs the test (root reads every file)
    with pytest.raises(LabkitError, match=r"cannot read .*s\.json"):
        state.read_json(folder, _dict, default={})
