"""Fault ``nobeat`` (``NCP_HPO_FAULTS``): a trial's first heartbeat held back, so that a real
``ncp-hpo worker`` can be SIGKILLed after its trial exists and before its first beat
(``benchmarks/chaos.py`` aims kills there).

* parsing, and the delay per trial number;
* the heartbeat thread writes nothing during the delay, and a trial that ends inside it
  never beats;
* a worker killed inside the window: its trial has no beat, it is failed with the
  never-beat reason and re-run, and the budget is met (SQLite and journal).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
from _distributed import Workers, audit, load, start_workers, worker_env
from optuna.trial import TrialState

from ncp_hpo.runtime._faults import first_beat_delay, parse_faults
from ncp_hpo.runtime._heartbeat import StorageHealth, TrialHeartbeat
from ncp_hpo.runtime._liveness import HEARTBEAT_ATTR

UNBEATEN = "stale heartbeat: no beat since the trial started more than 3 s ago"


def test_nobeat_rule_parses_and_applies_to_its_trials() -> None:
    faults = parse_faults("sleep@*:2,nobeat@4:1.5,nobeat@*:0.5")
    assert first_beat_delay(faults, 4) == 2.0
    assert first_beat_delay(faults, 5) == 0.5
    assert first_beat_delay(parse_faults("stall@4:9"), 4) == 0.0


class _Beats:
    def __init__(self) -> None:
        self.times: list[float] = []

    def record_heartbeat(self, trial_id: int) -> None:
        self.times.append(time.monotonic())


def test_first_beat_waits_for_the_delay_and_a_trial_ended_inside_it_never_beats() -> None:
    storage, health = _Beats(), StorageHealth(retry_window=1.0)
    t0 = time.monotonic()
    with TrialHeartbeat(storage, 1, interval=1, health=health, delay=0.6):
        time.sleep(0.9)
    assert storage.times and storage.times[0] - t0 >= 0.6
    quiet = _Beats()
    with TrialHeartbeat(quiet, 2, interval=1, health=health, delay=5.0):
        time.sleep(0.2)
    assert quiet.times == []
    plain = _Beats()
    with TrialHeartbeat(plain, 3, interval=1, health=health):
        time.sleep(0.2)
    assert len(plain.times) == 1


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_worker_killed_while_its_first_beat_is_held_back(
    kind: str, study_name: str, shared_data_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}" if kind == "sqlite" else f"journal:{tmp_path / 's.log'}"
    beat = ("--heartbeat", "1", "--grace", "3", "--poll", "0.5", "--timeout", "90")

    def start(faults: str, seed: int) -> Workers:
        return start_workers(
            1, study=study_name, storage=url, data_dir=shared_data_dir, budget=3,
            sampler="random", log_dir=tmp_path, extra=beat,
            env=worker_env(NCP_HPO_FAULTS=faults), seed0=seed,
        )  # fmt: skip

    first = start("nobeat@1:60,sleep@1:60", 0)
    try:
        deadline = time.monotonic() + 120
        held = None
        while held is None and time.monotonic() < deadline:
            try:
                trials = load(study_name, url).get_trials(deepcopy=False)
            except Exception:  # the study does not exist yet
                trials = []
            held = next((t for t in trials if t.number == 1 and len(t.params) == 6), None)
            time.sleep(0.2)
        assert held is not None, first.tail()
        time.sleep(1.5)  # a beat, if the fault were ignored, is written by now
        assert HEARTBEAT_ATTR not in load(study_name, url).trials[1].system_attrs
        first.procs[0].send_signal(signal.SIGKILL)
        assert first.wait(timeout=30) == [-signal.SIGKILL]
    finally:
        first.kill()
    second = start("", 1)
    try:
        assert second.wait(timeout=150) == [0], second.tail()
    finally:
        second.kill()
    a = audit(load(study_name, url))
    assert len(a.complete) == 3, a.line()
    assert a.states.get("RUNNING", 0) == 0 and a.states.get("WAITING", 0) == 0, a.line()
    killed = a.trials[1]
    assert killed.state == TrialState.FAIL
    assert str(killed.user_attrs.get("fail_reason", "")).startswith(UNBEATEN), killed.user_attrs
