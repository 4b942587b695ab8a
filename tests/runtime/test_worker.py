"""Many ``ncp-hpo worker`` processes sharing one study on PostgreSQL and on a journal file.

Each test starts real worker processes (``python -m ncp_hpo.cli worker``) on NAS-Bench-201
(exact table lookups, so trials are fast and the storage and samplers do the work) and
audits the study afterwards: the COMPLETE count equals the budget exactly, no trial is
lost, and codes evaluated twice are counted (NCP against TPE under the same load).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from _distributed import NCP_ARGS, audit, load, start_workers, worker_env
from optuna.trial import TrialState

pytestmark = pytest.mark.slow

N_WORKERS = 4
BUDGET = 48
STARTUP = "8"


def _storage(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"journal:{tmp_path / 'studies.log'}"


@pytest.mark.parametrize("backend", ["postgres", "journal"])
def test_four_ncp_and_four_tpe_workers_finish_exactly_the_budget(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    shared_data_dir: Path,
    study_name: str,
    record_property,
) -> None:
    storage = _storage(backend, request, tmp_path)
    names = {"ncp": f"{study_name}-ncp", "tpe": f"{study_name}-tpe"}
    if backend == "postgres":
        request.getfixturevalue("drop_studies").extend(names.values())
    t0 = time.monotonic()
    # NCP and TPE run at the same time: the same load on the same storage
    runs = {
        sampler: start_workers(
            N_WORKERS,
            study=name,
            storage=storage,
            data_dir=shared_data_dir,
            budget=BUDGET,
            sampler=sampler,
            log_dir=tmp_path,
            extra=("--startup-trials", STARTUP, *(NCP_ARGS if sampler == "ncp" else ())),
            seed0=100 if sampler == "tpe" else 0,
        )
        for sampler, name in names.items()
    }
    codes = {s: w.wait(timeout=400) for s, w in runs.items()}
    wall = time.monotonic() - t0
    for s, c in codes.items():
        assert c == [0] * N_WORKERS, f"{s} workers failed:\n{runs[s].tail()}"

    audits = {s: audit(load(name, storage)) for s, name in names.items()}
    for s, a in audits.items():
        assert len(a.complete) == BUDGET, f"{s}: {a.line()}\n{runs[s].tail()}"
        assert a.states.get("FAIL", 0) == 0, f"{s}: {a.line()}"
        assert a.states.get("RUNNING", 0) == 0 and a.states.get("WAITING", 0) == 0
        # the only non-COMPLETE trials are those pruned unevaluated at the budget's edge
        assert a.states.get("PRUNED", 0) == a.over_budget <= N_WORKERS - 1
        assert len({t.number for t in a.trials}) == len(a.trials)
        # the work was shared (a worker that starts late on a loaded machine may find the
        # budget already taken, so "every worker" would test the scheduler, not us)
        assert len({t.user_attrs["worker"] for t in a.complete}) >= 2
    ncp, tpe = audits["ncp"], audits["tpe"]
    record_property(
        "ncp_summary",
        f"{backend}, {N_WORKERS}+{N_WORKERS} workers x {BUDGET} trials in {wall:.0f} s: "
        f"NCP {ncp.line()}; TPE {tpe.line()}",
    )
    # NCP claims its proposals across processes: never worse than TPE at duplicates
    assert ncp.duplicates <= tpe.duplicates + 1, (ncp.line(), tpe.line())
    assert ncp.concurrent_duplicates == 0, ncp.line()


def _wait_for_running(study, number: int, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t in study.get_trials(deepcopy=False):
            # all 6 edges suggested: the worker is in the injected sleep
            if t.number == number and t.state == TrialState.RUNNING and len(t.params) == 6:
                return t
        time.sleep(0.2)
    raise AssertionError(f"trial {number} never ran")


# PostgreSQL end to end; the journal and SQLite heartbeats are tested in-process
# (test_storage.py), which is much faster than another set of worker processes
@pytest.mark.parametrize("backend", ["postgres"])
def test_a_killed_worker_trial_is_failed_by_heartbeat_and_rerun(
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    shared_data_dir: Path,
    study_name: str,
    record_property,
) -> None:
    """SIGKILL a worker in the middle of trial 3; trial 1 raises, trial 2 returns NaN.

    The faulted trials come before trial 3, so its re-run (numbered by when a heartbeat
    check finds it stale) can never be one of them; the NCP proposals from trial 4 on
    still see both failures in their history.
    """
    storage = _storage(backend, request, tmp_path)
    if backend == "postgres":
        request.getfixturevalue("drop_studies").append(study_name)
    budget, n = 16, 3
    workers = start_workers(
        n,
        study=study_name,
        storage=storage,
        data_dir=shared_data_dir,
        budget=budget,
        sampler="ncp",
        log_dir=tmp_path,
        extra=(
            "--startup-trials",
            "4",
            *NCP_ARGS,
            "--heartbeat",
            "1",
            "--grace",
            "3",
            "--retries",
            "2",
            "--poll",
            "0.5",
        ),
        env=worker_env(NCP_HPO_FAULTS="sleep@3:600,raise@1,nan@2"),
    )
    try:
        study = load(study_name, storage) if _exists(study_name, storage) else None
        deadline = time.monotonic() + 120
        while study is None and time.monotonic() < deadline:
            time.sleep(0.3)
            study = load(study_name, storage) if _exists(study_name, storage) else None
        assert study is not None, workers.tail()
        victim = _wait_for_running(study, 3, timeout=180)
        pid = int(victim.user_attrs["worker"].rsplit(":", 1)[1])
        assert pid in {p.pid for p in workers.procs}
        os.kill(pid, signal.SIGKILL)
        t_kill = time.monotonic()
        codes = workers.wait(timeout=300)
    finally:
        workers.kill()
    recovered = time.monotonic() - t_kill
    by_pid = {p.pid: c for p, c in zip(workers.procs, codes, strict=True)}
    assert by_pid.pop(pid) == -signal.SIGKILL
    assert list(by_pid.values()) == [0] * (n - 1), workers.tail()

    a = audit(load(study_name, storage))
    trials = {t.number: t for t in a.trials}
    assert len(a.complete) == budget, a.line()
    assert trials[3].state == TrialState.FAIL  # marked by another worker's heartbeat check
    assert trials[3].user_attrs["fail_reason"].startswith("stale heartbeat")
    retries = [t for t in a.trials if t.system_attrs.get("failed_trial") == 3]
    assert len(retries) == 1, [(t.number, t.state) for t in retries]
    assert retries[0].state == TrialState.COMPLETE
    assert retries[0].params == trials[3].params  # the same code, re-run
    assert retries[0].user_attrs["worker"] != victim.user_attrs["worker"]
    failed = {t.number for t in a.trials if t.state == TrialState.FAIL}
    assert failed == {1, 2, 3}, workers.tail()
    assert trials[1].user_attrs["fail_reason"].startswith("objective error: InjectedFault")
    assert trials[2].user_attrs["fail_reason"] == "objective returned nan"
    assert "fail_reason" not in retries[0].user_attrs  # the re-run did not inherit it
    assert a.states.get("RUNNING", 0) == 0 and a.states.get("WAITING", 0) == 0
    assert a.concurrent_duplicates == 0
    record_property(
        "ncp_summary",
        f"{backend}: {n} workers x {budget} trials, faults injected: SIGKILL mid-trial 3 "
        f"(re-run as trial {retries[0].number}, {recovered:.1f} s after the kill to the end), "
        f"raise in 1, NaN in 2 -> {a.line()}",
    )


def _exists(name: str, storage: str) -> bool:
    import optuna

    from ncp_hpo.runtime import open_storage

    try:
        summaries = optuna.get_all_study_summaries(open_storage(storage, heartbeat=None))
    except Exception:
        return False
    return any(s.study_name == name for s in summaries)


def test_sigterm_fails_the_running_trial_and_frees_its_place(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    common = dict(study="s", storage=storage, data_dir=shared_data_dir, budget=4, sampler="random")
    first = start_workers(
        1, log_dir=tmp_path, env=worker_env(NCP_HPO_FAULTS="sleep@1:600"), **common
    )
    try:
        deadline = time.monotonic() + 120
        while not _exists("s", storage) and time.monotonic() < deadline:
            time.sleep(0.3)
        _wait_for_running(load("s", storage), 1, timeout=120)
        first.procs[0].send_signal(signal.SIGTERM)
        assert first.wait(timeout=60) == [130], first.tail()
    finally:
        first.kill()
    assert first.logs[0].read_text().strip().splitlines()[-1] == "ncp-hpo: interrupted"
    trials = load("s", storage).get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert trials[1].user_attrs["fail_reason"] == "interrupted (SIGTERM or Ctrl-C)"
    second = start_workers(1, log_dir=tmp_path, seed0=1, **common)  # type: ignore[arg-type]
    assert second.wait(timeout=120) == [0], second.tail()
    a = audit(load("s", storage))
    assert len(a.complete) == 4 and a.states["FAIL"] == 1
