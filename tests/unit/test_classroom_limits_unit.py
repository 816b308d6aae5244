"""The classroom's defences without a server: idle-connection caps, event rates, JSON depth, the incremental
room, learner names, the store's secrets and the client's answer to 429."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest

from labkit.classroom import client, view
from labkit.classroom.guard import Waiting, budget
from labkit.classroom.limits import EventRate, TooDeep, depth, parse_json
from labkit.classroom.store import ClassroomFull, Store, hash_secret, matches
from labkit.core import fmt
from labkit.exercises.machinery import learner_names as names

# -- idle connections -------------------------------------------------------------------------


def test_waiting_pushes_out_the_oldest_fresh_ones_of_a_crowded_address_after_their_grace() -> None:
    w = Waiting[str](per_address=3, total=100, grace=0.1)
    for n in range(10):
        assert w.add(f"flood{n}", "10.0.0.1", True, now=0.0) == []
    assert w.add("honest", "10.0.0.1", True, now=0.05) == []
    assert w.trim(now=0.05) == []  # nobody has had their grace yet
    evicted = w.trim(now=0.12)
    assert evicted == [f"flood{n}" for n in range(8)]  # oldest first, down to the cap
    assert w.fresh("10.0.0.1") == 3 and "honest" not in evicted
    w.remove("honest")  # its head arrived
    assert w.fresh("10.0.0.1") == 2 and not w.over()


def test_keep_alive_connections_are_not_counted_per_address_but_in_all() -> None:
    w = Waiting[str](per_address=1, total=3, grace=0.0)
    for n in range(3):
        w.add(f"nat{n}", "192.0.2.1", False, now=float(n))  # a school's NAT: finished requests, keep-alive
    assert not w.over() and w.fresh("192.0.2.1") == 0
    w.add("new", "192.0.2.9", True, now=5.0)
    assert w.over() and w.trim(now=5.0) == ["nat0"]


def test_the_hard_ceiling_pushes_out_at_once_whatever_the_age() -> None:
    w = Waiting[int](per_address=1000, total=2, grace=60.0)
    assert [w.add(n, "x", True, now=0.0) for n in range(4)] == [[], [], [], []]
    assert w.add(4, "x", True, now=0.0) == [0] and len(w) == 4


def test_the_budget_keeps_waiting_connections_under_uvicorns_backstop() -> None:
    for files in (256, 1024, 8192, 65536):
        concurrency, waiting = budget(files)
        assert 2 * waiting <= concurrency < files


# -- events a minute ----------------------------------------------------------------------------


def test_the_event_rate_allows_a_burst_then_the_rate_and_says_how_long_to_wait() -> None:
    rate = EventRate(per_minute=60, burst=100)
    assert rate.take("ada", 100, now=0.0) == 0.0
    assert rate.take("ada", 50, now=0.0) == pytest.approx(50.0)  # one a second
    assert rate.take("ada", 10, now=10.0) == 0.0  # ten came back, and nothing was taken by the refusal
    assert rate.take("bob", 100, now=10.0) == 0.0  # each learner has their own bucket
    assert rate.take("ada", 101, now=1000.0) == float("inf")  # never fits: bigger than the bucket
    assert EventRate.per_learner(60, at_least=100).burst == 240
    assert EventRate.per_learner(10, at_least=100).burst == 100


# -- JSON -------------------------------------------------------------------------------------------


def test_json_depth_counts_brackets_outside_strings() -> None:
    assert depth('{"a": [1, {"b": "]]]{{{"}], "c": "\\"["}') == 3
    assert depth(b"[[[]]]") == 3 and depth("true") == 0


@pytest.mark.parametrize("body", [b"[" * 60_000, b"[" * 5000 + b"]" * 5000, json.dumps([[[[[[[[[[0]]]]]]]]]]).encode()])
def test_json_nested_too_deep_is_refused(body: bytes) -> None:
    with pytest.raises(TooDeep):
        parse_json(body)


def test_json_of_the_usual_shapes_parses() -> None:
    batch = [{"id": uuid.uuid4().hex, "hint": None, "passed": True} for _ in range(100)]
    assert parse_json(json.dumps(batch).encode()) == batch
    assert parse_json(b'{"name": "ada", "key": null}') == {"name": "ada", "key": None}
    with pytest.raises(ValueError) as bad:
        parse_json(b'{"v": 1,')
    assert not isinstance(bad.value, TooDeep)


# -- the room, one event at a time ----------------------------------------------------------------


def _reference_row(name: str, stored: list[tuple[dict[str, Any], str]], now: float) -> dict[str, Any]:
    """The live view's rule as it was first written: sort the learner's whole history, then fold it."""
    timed = sorted(((view.event_time(e, r), e) for e, r in stored), key=lambda pair: pair[0])
    cells: dict[str, dict[str, Any]] = {}
    last = 0.0
    for when, event in timed:
        cell = cells.setdefault(event["exercise"], {"passed": None, "attempts": 0, "hint_level": 0,
                                                    "fails_since_pass": 0, "hints_since_pass": 0, "last_at": 0.0})  # fmt: skip
        cell["last_at"] = max(cell["last_at"], when)
        last = max(last, when)
        if event["kind"] == "check":
            cell["attempts"] += 1
            cell["passed"] = bool(event["passed"])
            if cell["passed"]:
                cell["fails_since_pass"] = cell["hints_since_pass"] = 0
            else:
                cell["fails_since_pass"] += 1
        elif event["kind"] == "hint":
            level = int(event["hint_level"] or 0)
            cell["hint_level"] = max(cell["hint_level"], level)
            cell["hints_since_pass"] = max(cell["hints_since_pass"], level or 1)
    for cell in cells.values():
        cell["struggling"] = cell["passed"] is not True and (
            cell["fails_since_pass"] >= view.STUCK_FAILS or cell["hints_since_pass"] > 0
        )
        cell["stuck"] = cell["struggling"] and now - cell["last_at"] <= view.STUCK_WINDOW
    return {"name": name, "last_at": last, "cells": cells,
            "passed": sum(1 for c in cells.values() if c["passed"] is True),
            "stuck": sorted(ex for ex, c in cells.items() if c["stuck"])}  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_the_incremental_room_agrees_with_sorting_the_whole_history(seed: int) -> None:
    rng = random.Random(seed)
    base = fmt.timestamp("2026-11-27T09:00:00.000Z") or 0.0
    received = "2026-11-27T12:00:00.000Z"
    events = []
    for _ in range(rng.randint(1, 60)):
        kind = rng.choice(["check", "check", "check", "hint", "other"])
        seconds = base + rng.choice([0, 1, 2, 3, 60, 600, 3000, 9000, 20000])  # ties, and a clock ahead
        at = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        events.append({"id": uuid.uuid4().hex, "kind": kind, "learner": "ada",
                       "exercise": rng.choice(["a.one", "a.two"]), "passed": rng.random() < 0.3,
                       "hint_level": rng.randint(0, 3), "at": at})  # fmt: skip
    now = base + 3000
    room = view.Room([])
    for seq, event in enumerate(events):  # arrival order is the list's order: not the events' time order
        room.add(event, received, seq)
    assert room.learners["ada"].row(now) == _reference_row("ada", [(e, received) for e in events], now)
    assert view.learner_row("ada", [(e, received) for e in events], now) == room.learners["ada"].row(now)


def test_the_room_keeps_joined_learners_and_unknown_exercises_in_order_of_sight() -> None:
    room = view.Room([{"id": "a.one", "lesson": "00", "title": "t"}])
    room.join("zed")
    room.add({"id": "1", "kind": "check", "learner": "ada", "exercise": "new.x", "lesson": "09", "passed": True,
              "at": "2026-11-27T09:00:00.000Z"}, "2026-11-27T09:00:01.000Z", 7)  # fmt: skip
    snap = room.snapshot(0.0)
    assert [c["id"] for c in snap["exercises"]] == ["a.one", "new.x"]
    assert [row["name"] for row in snap["learners"]] == ["ada", "zed"] and snap["seq"] == 7


# -- names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "kept"),
    [("e\u0301ve", "\u00e9ve"), ("\uff21da", "Ada"), ("  Ada\u00a0Lovelace ", "Ada Lovelace"),
     ("\u5c71\u7530 \u306f\u306a\u3053", "\u5c71\u7530 \u306f\u306a\u3053"),  # Han + Hiragana: Japanese
     ("Ada \u674e", "Ada \u674e"), ("\u0414\u043c\u0438\u0442\u0440\u0438\u0439", "\u0414\u043c\u0438\u0442\u0440\u0438\u0439")],
)  # fmt: skip
def test_names_are_kept_in_nfkc(typed: str, kept: str) -> None:
    assert names.check_name(typed) == kept
    assert names.clean_name(typed) == kept


@pytest.mark.parametrize("name", ["\u0430da", "Ad\u03b1", "\u0410\u0434a Lovelace", "Ada \u05d0"])
def test_names_mixing_scripts_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="mixes"):
        names.check_name(name)
    assert names.clean_name(name) is None


def test_one_learner_per_name_key() -> None:
    same = [("ADA", "ada"), ("\u00e9ve", "E\u0301VE"), ("Coe", "\u0421\u043e\u0435"), ("Pax", "\u03a1\u0430\u0445")]
    for a, b in same:
        assert names.name_key(a) == names.name_key(b), (a, b)
    assert names.name_key("Ada") != names.name_key("Eda")


# -- the store's secrets ------------------------------------------------------------------------------


def test_an_older_database_with_tokens_in_clear_is_converted(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.execute("PRAGMA journal_mode=WAL")
    old.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE learners (name TEXT PRIMARY KEY, key_hash TEXT NOT NULL, joined_at TEXT NOT NULL);"
    )
    join, instructor = "a" * 31 + "1", "b" * 31 + "2"
    with old:
        old.execute("INSERT INTO meta VALUES ('join_token', ?), ('instructor_token', ?)", (join, instructor))
        old.execute("INSERT INTO learners VALUES ('ADA', ?, '2026-11-27T09:00:00.000Z')", (hash_secret("k"),))
    old.close()
    store = Store(db)
    try:
        hashes = store.token_hashes()
        assert matches(join, hashes.join) and matches(instructor, hashes.instructor)
        assert store.issue_tokens() is None  # kept, not replaced
        assert store.join("ada", "k") == "k" and store.learner_for_key("k") == "ADA"
    finally:
        store.close()
    for path in (db, Path(f"{db}-wal")):
        data = path.read_bytes() if path.exists() else b""
        assert join.encode() not in data and instructor.encode() not in data, path
    assert db.stat().st_mode & 0o777 == 0o600


def test_sessions_expire_and_a_rotation_ends_them(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    try:
        store.issue_tokens()
        alive, dead = store.new_session(3600), store.new_session(-1)
        assert store.session_valid(alive) and not store.session_valid(dead) and not store.session_valid("x")
        before = store.token_hashes()
        join, instructor = store.rotate()
        after = store.token_hashes()
        assert not store.session_valid(alive)
        assert after != before and matches(join, after.join) and not matches(join, before.join)
        assert not matches(instructor, after.join)
    finally:
        store.close()


def test_the_store_takes_max_learners_and_forgets_by_any_spelling(tmp_path: Path) -> None:
    store = Store(tmp_path / "c.db")
    try:
        keys = [store.join(n, None, max_learners=2) for n in ("ada", "bob")]
        assert all(keys)
        with pytest.raises(ClassroomFull, match="2 learners"):
            store.join("cyd", None, max_learners=2)
        assert store.join("ADA", keys[0], max_learners=2) == keys[0]  # not a new learner
        assert store.forget("BOB") and store.join("cyd", None, max_learners=2)
    finally:
        store.close()


# -- the client's answer to 429 -------------------------------------------------------------------------


def test_a_429_keeps_the_batch_and_says_when(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([client._Answer(429, {"error": "too many events"}, 42.0)])
    monkeypatch.setattr(client, "_request", lambda *a, **k: next(answers))
    with pytest.raises(client._Transient) as busy:
        client._post({"url": "http://x", "token": "t", "key": "k"}, [{"id": "1"}])
    assert busy.value.retry_after == 42.0 and "asks to wait 42 s" in str(busy.value)
    assert client._retry_after("60") == 60.0 and client._retry_after("soon") is None
    assert client._retry_after("99999") == client.MAX_RETRY_AFTER
