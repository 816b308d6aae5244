"""The verdicts of kill.now, start.again, restart.web, ls.all, attach.detach and load.back, from sample facts."""

from __future__ import annotations

import pytest

from labkit import exercises
from labkit.exercises._lesson06_signals import Event, Life, kill_verdict, restart_verdict
from labkit.exercises._lesson06_stopped import StartFacts, start_verdict
from labkit.exercises._lesson07_listing import Shelf, ls_verdict
from labkit.exercises._lesson08_attach import AttachFacts, attach_verdict
from labkit.exercises._lesson10_load import LoadFacts, load_verdict

NEW = ("kill.now", "start.again", "restart.web", "ls.all", "attach.detach", "load.back")

CREATED = (Event("create"), Event("start"))


def life(status: str, *events: Event, code: int = 0, started: str = "t0", **kw: object) -> Life:
    return Life(
        exists=True, ours=True, status=status, exit_code=code, started_at=started, events=(*CREATED, *events), **kw
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("exercise_id", NEW)
def test_three_tiers_and_only_the_last_gives_the_command(exercise_id: str) -> None:
    exercise = exercises.get(exercise_id)
    assert len(exercise.hints) == 3 and exercise.hints[-1].startswith("Type:")
    first_command = exercise.solution[0].split("{")[0].strip()
    assert first_command not in exercise.hints[0] and first_command not in exercise.hints[1]


def test_lessons_hold_their_new_exercises() -> None:
    by_lesson = {e.id: e.lesson for e in exercises.all_exercises()}
    assert [by_lesson[i] for i in NEW] == ["06", "06", "06", "07", "08", "10"]


# --- kill.now ---------------------------------------------------------------------------


def test_kill_passes_on_sigkill_without_stop() -> None:
    verdict = kill_verdict(life("exited", Event("kill", 9), Event("die"), code=137))
    assert verdict.passed and "137" in verdict.message


def test_kill_names_docker_stop_and_its_wait() -> None:
    stopped = life("exited", Event("kill", 15, 10.0), Event("kill", 9, 20.2), Event("die"), Event("stop"), code=137)
    verdict = kill_verdict(stopped)
    assert not verdict.passed
    assert "`docker stop` sent SIGTERM" in verdict.message and "waited 10 s" in verdict.message
    assert "docker kill" not in (verdict.hint or "")


def test_kill_with_sigterm_leaves_it_running() -> None:
    verdict = kill_verdict(life("running", Event("kill", 15)))
    assert not verdict.passed and "signal 15" in verdict.message and "ignores SIGTERM" in verdict.message


def test_kill_then_started_again() -> None:
    verdict = kill_verdict(life("running", Event("kill", 9), Event("die"), Event("start")))
    assert not verdict.passed and "started again" in verdict.message


def test_kill_removed_with_rm_f() -> None:
    verdict = kill_verdict(Life(exists=False, removed="stopped"))
    assert not verdict.passed and "docker rm -f" in verdict.message


def test_kill_cannot_tell_without_events() -> None:
    verdict = kill_verdict(Life(exists=True, ours=True, status="exited", exit_code=137, events=None))
    assert not verdict.passed and "cannot tell" in verdict.message


def test_kill_outside_docker_and_oom() -> None:
    assert "not through Docker" in kill_verdict(life("exited", Event("die"), code=137)).message
    assert "memory" in kill_verdict(life("exited", Event("die"), code=137, oom=True)).message


def test_kill_of_a_replacement() -> None:
    verdict = kill_verdict(Life(exists=True, ours=False, status="exited", exit_code=137))
    assert not verdict.passed and "not the one setup started" in verdict.message


# --- restart.web ------------------------------------------------------------------------


def test_restart_passes_on_docker_restart_and_names_it() -> None:
    verdict = restart_verdict(
        life("running", Event("kill", 15), Event("die"), Event("stop"), Event("start"), Event("restart"), started="t1"),
        "t0",
    )
    assert verdict.passed and "`docker restart`" in verdict.message


def test_restart_accepts_stop_then_start() -> None:
    verdict = restart_verdict(
        life("running", Event("kill", 15), Event("die"), Event("stop"), Event("start"), started="t1"), "t0"
    )
    assert verdict.passed and "stopped and started again" in verdict.message


def test_restart_kill_then_start_is_not_graceful() -> None:
    verdict = restart_verdict(life("running", Event("kill", 9), Event("die"), Event("start"), started="t1"), "t0")
    assert not verdict.passed and "killed" in verdict.message


def test_restart_pause_unpause_and_nothing_done() -> None:
    paused = restart_verdict(life("running", Event("pause"), Event("unpause")), "t0")
    assert not paused.passed and "paused and unpaused" in paused.message
    untouched = restart_verdict(life("running"), "t0")
    assert not untouched.passed and "still runs the process setup started" in untouched.message
    assert "docker restart" not in untouched.message + (untouched.hint or "")


def test_restart_only_stopped_or_replaced() -> None:
    assert "first half" in restart_verdict(life("exited", Event("stop")), "t0").message
    assert "new container" in restart_verdict(Life(exists=True, ours=False, status="running"), "t0").message


# --- start.again ------------------------------------------------------------------------


def test_start_passes_for_the_same_container_running() -> None:
    verdict = start_verdict(StartFacts(exists=True, same=True, status="running", runs=2), "abc")
    assert verdict.passed and "same container" in verdict.message


def test_start_names_a_new_container_from_the_image() -> None:
    verdict = start_verdict(
        StartFacts(exists=True, same=True, status="exited", runs=1, newcomers=("eager_turing",)), "abc"
    )
    assert (
        not verdict.passed
        and "eager_turing" in verdict.message
        and "`docker run` makes a new container" in verdict.message
    )
    replaced = start_verdict(StartFacts(exists=True, same=False, status="running"), "abc")
    assert not replaced.passed and "new container" in replaced.message


def test_start_still_stopped_gives_no_command() -> None:
    verdict = start_verdict(StartFacts(exists=True, same=True, status="exited", runs=1), "abc")
    assert not verdict.passed and "docker start" not in verdict.message + (verdict.hint or "")


# --- ls.all -----------------------------------------------------------------------------

SHELVES = [
    Shelf("shelf-amber", "sha256:" + "a" * 64, "running", False),
    Shelf("shelf-birch", "b" * 64, "running", False),
    Shelf("shelf-cedar", "c1" * 32, "exited", True),
]


@pytest.mark.parametrize("answer", ["shelf-cedar", " 'shelf-cedar' ", "/shelf-cedar", "c1c1c1c1c1c1", "c1" * 32])
def test_ls_accepts_the_name_and_the_id(answer: str) -> None:
    assert ls_verdict(answer, SHELVES).passed


def test_ls_running_one_typo_others_and_nothing() -> None:
    running = ls_verdict("shelf-amber", SHELVES)
    assert not running.passed and "already lists it" in running.message
    assert "close" in ls_verdict("shelf-ceder", SHELVES).message
    assert "setup did not make it" in ls_verdict("graceful", SHELVES, others=["graceful"]).message
    assert "No container is named" in ls_verdict("nope", SHELVES).message
    assert "empty" in ls_verdict("  ", SHELVES).message
    assert "gone" in ls_verdict("shelf-cedar", SHELVES[:2]).message


# --- attach.detach ----------------------------------------------------------------------


def test_attach_passes_when_attached_and_running() -> None:
    verdict = attach_verdict(
        AttachFacts(exists=True, ours=True, status="running", actions=("attach", "resize"), starts=1)
    )
    assert verdict.passed and verdict.evidence["attached"] == 1


def test_attach_exit_exec_and_nothing() -> None:
    exited = attach_verdict(AttachFacts(exists=True, ours=True, status="exited", actions=("attach", "die"), starts=1))
    assert not exited.passed and "main shell ended" in exited.message
    execd = attach_verdict(
        AttachFacts(exists=True, ours=True, status="running", actions=("exec_create: sh", "exec_start: sh"), starts=1)
    )
    assert not execd.passed and "docker exec" in execd.message
    restarted = attach_verdict(AttachFacts(exists=True, ours=True, status="running", actions=(), starts=2))
    assert not restarted.passed and "started again" in restarted.message
    nothing = attach_verdict(AttachFacts(exists=True, ours=True, status="running", actions=(), starts=1))
    assert not nothing.passed and "docker attach" not in nothing.message + (nothing.hint or "")


# --- load.back --------------------------------------------------------------------------

ID = "sha256:" + "4" * 64
SHORT = "4" * 12


def test_load_passes_after_delete_then_load() -> None:
    facts = LoadFacts(present=ID, layers=2, events=(("save", ID), ("untag", ID), ("delete", ID), ("load", ID)))
    assert load_verdict(facts, SHORT, "/w/cargo.tar").passed


def test_load_while_still_there_and_untag_retag() -> None:
    loaded = load_verdict(LoadFacts(present=ID, layers=2, events=(("save", ID), ("load", ID))), SHORT, "/p")
    assert not loaded.passed and "still here" in loaded.message
    retag = load_verdict(
        LoadFacts(present=ID, layers=2, events=(("save", ID), ("untag", ID), ("tag", ID))), SHORT, "/p"
    )
    assert not retag.passed and "never left" in retag.message


def test_load_names_docker_import() -> None:
    new = "sha256:" + "9" * 64
    facts = LoadFacts(present=new, layers=1, events=(("save", ID), ("untag", ID), ("delete", ID), ("import", new)))
    verdict = load_verdict(facts, SHORT, "/p")
    assert not verdict.passed and "`docker import`" in verdict.message and "one-layer" not in verdict.message
    assert "1 layer" in verdict.message and "docker load" not in (verdict.hint or "")


def test_load_removed_not_yet_back_and_untouched() -> None:
    gone = load_verdict(LoadFacts(present=None, events=(("save", ID), ("untag", ID), ("delete", ID))), SHORT, "/p")
    assert not gone.passed and "first step is done" in gone.message
    untouched = load_verdict(LoadFacts(present=ID, layers=2, events=(("save", ID),)), SHORT, "/p")
    assert not untouched.passed and "docker load" not in untouched.message + (untouched.hint or "")
    unknown = load_verdict(LoadFacts(present=ID, layers=2, events=None), SHORT, "/p")
    assert not unknown.passed and "cannot see" in unknown.message
