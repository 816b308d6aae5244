"""labkit.bench_hub's pure parts: percentiles, the projection's arithmetic, the figures and the rendered report.

No hub, no daemon: the measured run is made up here from known numbers.
"""

from __future__ import annotations

import json

import pytest

from labkit.bench_hub import (
    CLASS_SIZES,
    GIB,
    MACHINE_GIB,
    MIB,
    Costs,
    HubRun,
    Memory,
    _breakdown,
    _cpu_spent,
    _owned,
    figures,
    last_ready_s,
    most_learners,
    need_gib,
    project,
    render,
    spread,
)


def _costs(learner_mib: float = 256.0, hub_mib: float = 128.0, per: float = 0.0, cpu: float = 2.0) -> Costs:
    return Costs(learner_mib * MIB, hub_mib * MIB, per * MIB, cpu, 6.0)


def _run() -> HubRun:
    run = HubRun(learners=4, cpus=2, load_before=(1.0, 0.5, 0.25), load_after=(3.0, 2.0, 1.0))
    run.alone_s = 6.0
    run.ready_s = [8.0, 10.0, 12.0, 20.0]
    run.burst_wall_s = 20.5
    run.cpu_burst = {"dockerd": 6.0, "lab": 3.0, "slirp4netns": 1.0}
    run.machine_busy_s = 30.0
    run.idle = {f"n{i}": Memory(uss=100 * MIB, pss=(200 + 10 * i) * MIB, rss=300 * MIB, processes=9) for i in range(5)}
    run.active = {f"n{i}": Memory(uss=120 * MIB, pss=250 * MIB, rss=350 * MIB, processes=12) for i in range(1, 5)}
    run.hub_alone = Memory(pss=150 * MIB)
    run.hub = Memory(uss=120 * MIB, pss=130 * MIB, rss=200 * MIB, processes=1)
    run.proxy = Memory(uss=40 * MIB, pss=60 * MIB, rss=80 * MIB, processes=1)
    run.available_before, run.available_idle = 22 * GIB, 20 * GIB
    run.check_ms = [float(n) for n in range(100, 1300, 100)]  # 12 samples: 3 rounds of 4
    run.checks_not_passed = 1
    return run


def test_spread_is_p50_p95_and_max() -> None:
    assert spread([4.0, 1.0, 3.0, 2.0]) == {"p50": 2.5, "p95": pytest.approx(3.85), "max": 4.0}
    assert spread([7.0]) == {"p50": 7.0, "p95": 7.0, "max": 7.0}
    assert spread([]) == {"p50": None, "p95": None, "max": None}


def test_memory_needed_is_learners_times_each_plus_the_hub_and_the_reserve() -> None:
    # 100 x 256 MiB = 25 GiB, + 128 MiB hub, + 1 GiB reserve
    assert need_gib(100, _costs(), reserve_gib=1.0) == pytest.approx(25 + 0.125 + 1)
    # the hub's growth per learner counts once per learner
    assert need_gib(100, _costs(per=1.0), reserve_gib=0.0) == pytest.approx(25 + (128 + 100) / 1024)


def test_most_learners_is_what_fits_below_the_ram_rounded_down() -> None:
    # (16 - 1) GiB - 128 MiB = 15232 MiB; / 256 MiB = 59.5
    assert most_learners(16, _costs(), reserve_gib=1.0) == 59
    assert most_learners(1, _costs(hub_mib=2048), reserve_gib=1.0) == 0
    assert most_learners(16, _costs(learner_mib=0.0), reserve_gib=1.0) == 0  # nothing measured: no claim


def test_the_last_learner_is_ready_when_the_cpu_work_is_shared_out_never_sooner_than_alone() -> None:
    costs = _costs(cpu=2.0)  # alone: 6 s
    assert last_ready_s(100, 8, costs) == pytest.approx(25.0)
    assert last_ready_s(200, 32, costs) == pytest.approx(12.5)
    assert last_ready_s(30, 32, costs) == pytest.approx(6.0)
    assert last_ready_s(10, 0, costs) == pytest.approx(20.0)  # a machine has at least one CPU


def test_the_projection_covers_every_class_on_every_machine() -> None:
    fits = project(_costs())
    assert [(f.learners, f.ram_gib) for f in fits] == [(n, ram) for n in CLASS_SIZES for ram in MACHINE_GIB]
    by = {(f.learners, f.ram_gib): f for f in fits}
    assert by[(100, 32)].vcpus == 8 and by[(100, 32)].fits and not by[(100, 16)].fits
    assert by[(30, 8)].vcpus == 2 and not by[(30, 8)].fits  # 7.5 GiB + 1.125 > 8
    assert by[(200, 64)].need_gib == pytest.approx(51.12, abs=0.01)
    assert by[(200, 64)].last_ready_s == pytest.approx(25.0)


def test_costs_come_from_the_idle_pss_the_hub_and_the_burst() -> None:
    costs = _run().costs()
    assert costs.learner_bytes == pytest.approx(220 * MIB)  # mean of 200..240
    assert costs.hub_bytes == pytest.approx(190 * MIB)  # hub + proxy
    assert costs.hub_bytes_per_learner == pytest.approx(10 * MIB)  # (190 - 150) / 4
    assert costs.cpu_s_per_start == pytest.approx(2.5)
    assert costs.alone_s == 6.0


def test_a_hub_that_shrank_does_not_make_learners_free() -> None:
    run = _run()
    run.hub_alone = Memory(pss=500 * MIB)
    assert run.costs().hub_bytes_per_learner == 0.0


def test_figures_from_known_numbers() -> None:
    f = figures(_run())
    assert f["login_ready_p50_s"] == 11.0 and f["login_ready_max_s"] == 20.0
    assert f["login_ready_p95_s"] == pytest.approx(18.8)
    assert f["idle_pss_mean_mib"] == 220.0 and f["idle_pss_max_mib"] == 240.0 and f["idle_uss_max_mib"] == 100.0
    assert f["active_pss_mean_mib"] == 250.0
    assert f["hub_pss_mib"] == 130.0 and f["proxy_pss_mib"] == 60.0
    assert f["mem_available_before_gib"] == 22.0 and f["mem_available_idle_gib"] == 20.0
    assert f["check_p50_ms"] == 650.0 and f["check_max_ms"] == 1200.0 and f["check_samples"] == 12
    assert f["checks_not_passed"] == 1 and f["check_way"] == "run_as"
    assert f["load_before"] == [1.0, 0.5, 0.25]
    assert len(f["projection"]) == len(CLASS_SIZES) * len(MACHINE_GIB)


def test_the_report_says_projection_how_checks_ran_and_ends_with_the_json() -> None:
    run = _run()
    text = render(run, {"CPUs": "2"})
    last = text.splitlines()[-1]
    assert json.loads(last) == json.loads(json.dumps(figures(run)))
    assert "PROJECTION, not a measurement" in text
    assert "no grading service on this hub" in text
    assert "load average (1, 5, 15 min): 1.00 0.50 0.25 before, 3.00 2.00 1.00 after" in text
    run.check_way = "grader"
    assert "through the hub's grading service" in render(run, {})


def test_a_run_that_measured_nothing_still_renders() -> None:
    run = HubRun(learners=1, cpus=2, load_before=(0.0, 0.0, 0.0))
    f = figures(run)
    assert f["login_ready_p95_s"] is None and f["idle_pss_mean_mib"] is None and f["check_p95_ms"] is None
    assert json.loads(render(run, {}).splitlines()[-1])["hub_learners"] == 1


def test_cpu_spent_counts_new_processes_whole_and_old_ones_by_their_growth() -> None:
    before = {(10, 1.0, "hub"): 5.0, (11, 1.0, "dockerd"): 1.0}
    # pid 11 is another process now
    after = {(10, 1.0, "hub"): 7.5, (11, 2.0, "dockerd"): 0.5, (12, 3.0, "dockerd"): 4.0}
    assert _cpu_spent(before, after) == {"hub": pytest.approx(2.5), "dockerd": pytest.approx(4.5)}


def test_the_cpu_breakdown_names_the_largest_first_and_sums_the_rest() -> None:
    spent = {"a": 1.0, "b": 5.0, "c": 2.0, "d": 0.5}
    assert _breakdown(spent, shown=2) == "b 5.0, c 2.0, others 1.5 (CPU-s)"
    assert _breakdown({"a": 1.0}) == "a 1.0 (CPU-s)"


def test_a_learners_processes_are_their_uid_and_their_subordinate_uids() -> None:
    owns = _owned(1001, [(100000, 65536)])
    assert owns(1001) and owns(100000) and owns(165535)
    assert not owns(0) and not owns(1002) and not owns(165536)


def test_a_learner_with_a_notebook_open_is_what_the_projection_counts() -> None:
    run = _run()
    run.notebook = {f"n{i}": Memory(pss=300 * MIB) for i in range(5)}
    run.services = Memory(pss=40 * MIB)
    costs = run.costs()
    assert costs.learner_bytes == pytest.approx(300 * MIB)
    assert costs.hub_bytes == pytest.approx(230 * MIB)  # hub, grader, proxy
    assert figures(run)["notebook_pss_mean_mib"] == 300.0
