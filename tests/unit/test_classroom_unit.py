"""Classroom logic without a server: the live view's rules, names, hosts, batching, the store, the queue."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from labkit.classroom import client, view
from labkit.classroom.server import banner, is_loopback, listen_host
from labkit.classroom.store import Store
from labkit.core import fmt
from labkit.core.errors import LabkitError
from labkit.exercises.machinery import learner_names as names


def _event(
    kind: str = "check", passed: bool = False, at: str = "2026-11-27T21:30:00.000Z", level: int = 0
) -> dict[str, Any]:
    return {"id": uuid.uuid4().hex, "kind": kind, "learner": "ada", "exercise": "welcome.first-container",
            "lesson": "00", "passed": passed, "hint_level": level, "at": at}  # fmt: skip


NOW = fmt.timestamp("2026-11-27T21:31:00.000Z")
RECEIVED = "2026-11-27T21:30:30.000Z"


def _cell(events: list[dict[str, Any]], now: float = NOW) -> dict[str, Any]:
    row = view.learner_row("ada", [(e, RECEIVED) for e in events], now)
    return dict(row["cells"]["welcome.first-container"])


def test_latest_check_decides_passed() -> None:
    assert _cell([_event(passed=True), _event(at="2026-11-27T21:30:01.000Z")])["passed"] is False
    cell = _cell([_event(), _event(passed=True, at="2026-11-27T21:30:01.000Z")])
    assert cell["passed"] is True and cell["attempts"] == 2


def test_stuck_after_three_failures_or_a_hint_but_not_once_passed() -> None:
    assert not _cell([_event(), _event()])["stuck"]
    assert _cell([_event(), _event(), _event()])["stuck"]
    hinted = _cell([_event(kind="hint", level=2)])
    assert hinted["stuck"] and hinted["hint_level"] == 2 and hinted["passed"] is None
    later = "2026-11-27T21:30:05.000Z"
    assert not _cell([_event(), _event(), _event(), _event(passed=True, at=later)])["stuck"]


def test_stuck_needs_recent_activity() -> None:
    cell = _cell([_event(), _event(), _event()], now=NOW + view.STUCK_WINDOW + 60)
    assert cell["struggling"] and not cell["stuck"]


def test_event_time_is_never_after_arrival() -> None:
    future = _event(at="2030-01-01T00:00:00.000Z")
    assert view.event_time(future, RECEIVED) == fmt.timestamp(RECEIVED)
    assert view.event_time(_event(), RECEIVED) == fmt.timestamp("2026-11-27T21:30:00.000Z")


def test_snapshot_keeps_course_order_and_adds_unknown_exercises() -> None:
    other = {**_event(), "exercise": "new.one", "lesson": "09"}
    snap = view.snapshot([(other, RECEIVED)], [{"id": "welcome.first-container", "lesson": "00", "title": "t"}],
                         NOW, learners=["zed"])  # fmt: skip
    assert [e["id"] for e in snap["exercises"]] == ["welcome.first-container", "new.one"]
    assert [row["name"] for row in snap["learners"]] == ["ada", "zed"]


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 101, None, "zero\u200bwidth"])
def test_bad_names(name: Any) -> None:
    with pytest.raises(ValueError):
        names.check_name(name)


def test_hosts() -> None:
    assert listen_host(None, False) == "127.0.0.1"
    assert listen_host(None, True) == "0.0.0.0"
    assert listen_host("::1", False) == "::1"
    with pytest.raises(LabkitError, match="without --public"):
        listen_host("0.0.0.0", False)
    assert listen_host("10.0.0.5", True) == "10.0.0.5"
    assert is_loopback("localhost") and not is_loopback("example")
    text = banner("127.0.0.1", 8787, ("JOIN", "INSTR"), Path("/x.db"))
    assert "labkit classroom join http://127.0.0.1:8787 JOIN --name NAME" in text
    assert "http://127.0.0.1:8787/?token=INSTR" in text
    kept = banner("127.0.0.1", 8787, None, Path("/x.db"), "2026-11-27T09:00:00.000Z")
    assert "tokens kept" in kept and "classroom rotate" in kept and "?token=" not in kept


def test_batches_respect_count_and_size() -> None:
    small = [{"id": str(n), "message": ""} for n in range(120)]
    assert [len(b) for b in client._batches(small)] == [50, 50, 20]
    big = [{"id": str(n), "message": "x" * 20000} for n in range(5)]
    assert all(len(json.dumps(b)) < 64 * 1024 for b in client._batches(big))


def test_store_tokens_keys_and_dedupe(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    issued = store.issue_tokens()
    assert issued is not None and store.issue_tokens() is None  # shown once: only their hashes are kept
    hashes = store.token_hashes()
    key = store.join("ada", None)
    assert key and store.join("ada", None) is None and store.join("ada", key) == key
    assert store.learner_for_key(key) == "ada"
    e = {"id": uuid.uuid4().hex, "learner": "ada", "exercise": "x"}
    assert len(store.add([e, e])) == 1 and store.add([e]) == []
    store.close()
    again = Store(tmp_path / "c.db")
    assert again.issue_tokens() is None and again.token_hashes() == hashes
    assert again.count() == 1 and again.learner_for_key(key) == "ada"
    assert again.forget("ada") and again.learner_for_key(key) is None
    again.close()


def _contract_event(event_id: str, **changes: Any) -> dict[str, Any]:
    """An event as a check writes it (every field of the contract)."""
    event = {"v": 1, "id": event_id, "kind": "check", "learner": "ada", "exercise": "welcome.first-container",
             "lesson": "00", "passed": False, "status": "not yet", "message": "No container yet.", "hint": None,
             "hint_level": 0, "at": "2026-11-27T21:30:00.000Z", "labkit": "0.1.0"}  # fmt: skip
    return event | changes


def test_submit_without_a_classroom_does_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    client.submit({"id": "a"})
    assert not client.queue_path().exists()
    with pytest.raises(client.ClassroomError, match="not in a classroom"):
        client.flush()


def test_submit_queues_fast_when_the_server_is_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    # Port 9 on loopback (discard) has no listener here: the background thread fails quickly and backs off.
    client.config_path().write_text(
        json.dumps({"url": "http://127.0.0.1:9", "token": "t", "learner": "ada", "key": "k"})
    )
    started = time.perf_counter()
    for n in range(20):
        client.submit(_contract_event(f"{n:032x}"))
    per_call = (time.perf_counter() - started) / 20
    assert per_call < 0.02
    assert client.queued() == 20
    with pytest.raises(client.ClassroomError, match="20 result"):
        client.flush(timeout=5)
    client._last_failure = "test: no exit flush"  # keep the atexit hook from retrying the dead URL
    assert client.leave() == 20 and client.queued() == 0


def test_tokens_and_keys_can_be_typed_as_arguments(tmp_path: Path) -> None:
    """A token starting with "-" would be read as an option by `labkit classroom join URL TOKEN`."""
    from labkit.classroom.store import Store, new_token

    assert all(len(t) == 32 and t.isalnum() for t in (new_token() for _ in range(2000)))
    store = Store(tmp_path / "classroom.db")
    try:
        issued = store.issue_tokens()
        assert issued is not None
        join, instructor = issued
        key = store.join("ada", None)
        assert key is not None
        assert all(value.isalnum() for value in (join, instructor, key))
    finally:
        store.close()


QUEUE_DAMAGE = {
    "a list": "[]",
    "null": "null",
    "an id of the wrong type": '{"id": 5, "learner": "ada"}',
    "not an object": '"a string"',
    "truncated": '{"id": "00000000000000000000000000000009", "lear',
}


@pytest.mark.parametrize("damage", QUEUE_DAMAGE.values(), ids=QUEUE_DAMAGE.keys())
def test_a_damaged_queue_line_is_set_aside_and_the_good_ones_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    good = [{"id": f"{n:032x}", "learner": "ada"} for n in range(3)]
    lines = [json.dumps(good[0]), json.dumps(good[1]), damage, json.dumps(good[2])]
    client.queue_path().write_text("\n".join(lines) + "\n")
    assert client.queued() == 3  # a reader skips the damaged line
    notice = client.repair_queue()
    assert (
        notice is not None
        and "\n" not in notice
        and "1 damaged line(s)" in notice
        and "3 queued result(s) kept" in notice
    )
    (aside,) = tmp_path.glob("classroom-queue.jsonl.damaged-*")
    assert str(aside) in notice and aside.read_text() == damage + "\n"
    assert [json.loads(line) for line in client.queue_path().read_text().splitlines()] == good
    assert client.repair_queue() is None  # nothing left to repair


def test_a_queue_line_cut_short_does_not_swallow_the_next_submit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABKIT_STATE_DIR", str(tmp_path))
    client.config_path().write_text(
        json.dumps({"url": "http://127.0.0.1:9", "token": "t", "learner": "ada", "key": "k"})
    )
    client.queue_path().write_text('{"id": "00000000000000000000000000000001"}\n{"id": "0000')
    monkeypatch.setattr(client, "_ensure_sender", lambda: None)  # no thread: only the file is under test
    client.submit({"id": "00000000000000000000000000000002"})
    assert [e["id"][-1] for e in client._read_queue()] == ["1", "2"]
    client._remove(
        {"00000000000000000000000000000001"}
    )  # what the sender does after a post: the damaged line is set aside, not lost
    assert [e["id"][-1] for e in client._read_queue()] == ["2"]
    (aside,) = tmp_path.glob("classroom-queue.jsonl.damaged-*")
    assert aside.read_text() == '{"id": "0000\n'


def test_try_add_stores_when_the_database_is_free_and_gives_up_when_it_is_held(tmp_path: Path) -> None:
    """The server's loop stores a post itself, but never waits long for a thread holding the database."""
    import threading  # only this test holds the lock from another thread

    store = Store(tmp_path / "c.db")
    first = {"id": uuid.uuid4().hex, "learner": "ada", "exercise": "x"}
    assert [s.event["id"] for s in store.try_add([first]) or []] == [first["id"]]
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    second = {"id": uuid.uuid4().hex, "learner": "ada", "exercise": "x"}
    started = time.monotonic()
    assert store.try_add([second], wait=0.02) is None  # nothing stored: the caller hands it to a thread
    assert time.monotonic() - started < 0.5
    release.set()
    holder.join(5)
    assert store.count() == 1 and len(store.add([second])) == 1
    store.close()
