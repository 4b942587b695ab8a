"""``benchmarks/chaos.py``: its figures from a study read back, and a tiny real run (journal,
2 workers, 8 trials, 3 SIGKILLs and a SIGTERM, seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from _data_helpers import SCRIPTS, load_script


@pytest.fixture
def chaos(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.syspath_prepend(str(SCRIPTS))  # its helper module lies next to it
    yield load_script("chaos")


def _trial(number: int, state: str, pid: int, params: dict[str, int], **attrs: Any) -> Any:
    return SimpleNamespace(
        number=number,
        state=SimpleNamespace(name=state),
        params=params,
        system_attrs={"ncp_hpo:started": [0.0, "h", pid, 1]},
        user_attrs=attrs,
    )


def test_figures_count_healthy_failures_duplicates_and_early_kills(chaos: ModuleType) -> None:
    log = {
        "signals": [chaos.Signal(11, "SIGKILL pre-beat", 1.0), chaos.Signal(12, "SIGTERM", 2.0)],
        "unsent": 0,
        "outages": [],
        "outages_unmade": 0,
        "killed_at_end": 0,
    }
    never = "stale heartbeat: no beat since the trial started more than 5 s ago (...)"
    trials = [
        _trial(0, "COMPLETE", 10, {"a": 1}),
        _trial(1, "FAIL", 11, {}, fail_reason=never),
        _trial(2, "FAIL", 12, {"a": 2}, fail_reason="interrupted (SIGTERM or Ctrl-C)"),
        _trial(3, "COMPLETE", 13, {"a": 2}),
    ]
    r = chaos.audit(trials, log, 2)
    assert (r["complete"], r["failed"], r["prebeat_landed"], r["in_trial"]) == (2, 2, 1, 2)
    assert r["healthy_failed"] == [] and r["duplicates"] == 0
    args = SimpleNamespace(min_kills=1)
    assert chaos.goals(r, log, args) == []
    trials += [
        _trial(4, "FAIL", 13, {"a": 3}, fail_reason="objective error: boom"),  # 13: never signalled
        _trial(5, "COMPLETE", 14, {"a": 1}),  # the code of trial 0 again
        _trial(6, "RUNNING", 14, {"a": 4}),
    ]
    r = chaos.audit(trials, log, 2)
    assert r["healthy_failed"] == [4] and r["duplicates"] == 1 and r["running"] == 1
    missed = " ".join(chaos.goals(r, log, SimpleNamespace(min_kills=2)))
    for goal in ("COMPLETE 3 != budget 2", "1 RUNNING", "healthy trials failed: [4]",
                 "1 duplicate codes", "1 SIGKILLs sent < 2"):  # fmt: skip
        assert goal in missed, missed


def test_signals_are_paced_by_the_rate_trials_complete_not_by_the_workers_start_up(
    chaos: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Four trials COMPLETE one second apart, after a start-up of any length: 1 trial/s.
    trials = [
        SimpleNamespace(state=SimpleNamespace(name="COMPLETE"), datetime_complete=end)
        for end in (datetime(2026, 1, 1, 0, 0, s, tzinfo=UTC) for s in (1, 2, 3, 4))
    ]
    study = chaos.Study("unused", "unused")
    monkeypatch.setattr(study, "trials", lambda: trials)
    assert study.throughput() == pytest.approx(1.0)
    a = SimpleNamespace(budget=20, workers=2, trial_s=0.5)
    # 0.85 * 20 - 4 = 13 trials to go at 1/s, shared by 4 signals.
    assert chaos.pace(study, 4, a) == pytest.approx(13 / 4)
    monkeypatch.setattr(study, "trials", lambda: trials[:2])  # too few: the configured rate
    assert study.throughput() is None
    assert chaos.pace(study, 4, a) == pytest.approx((0.85 * 20 - 2) / (2 / 1.5) / 4)


@pytest.mark.slow
def test_a_tiny_chaos_run_meets_its_goals(
    chaos: ModuleType, shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--storages", "journal", "--workers", "2", "--budget", "8", "--kills", "2"]
    argv += ["--prebeat", "1", "--terms", "1", "--min-kills", "3", "--outages"]
    argv += ["--sampler", "random", "--trial-s", "1.0", "--warmup", "2"]
    argv += ["--data-dir", str(shared_data_dir), "--work-dir", str(tmp_path)]
    code = chaos.main(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "COMPLETE 8/8, RUNNING left 0, WAITING left 0" in out, out
    assert "SIGKILL 2, SIGKILL pre-beat 1, SIGTERM 1 (0 of the schedule unsent)" in out, out
    assert "healthy trials failed: 0" in out and "goals: all met" in out, out
