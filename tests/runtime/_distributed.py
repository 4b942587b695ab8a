"""Helpers of the multi-process tests: start ``ncp-hpo worker`` processes, audit a study."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

# light NCP settings: the tests check coordination, not search quality
NCP_ARGS = (
    "--sampler-param",
    "iterations=20",
    "--sampler-param",
    'predictor_params={"epochs": 60}',
)


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        PYTHONUNBUFFERED="1",
        PYTHONWARNINGS="ignore",
    )
    env.pop("NCP_HPO_FAULTS", None)
    env.update(extra)
    return env


@dataclass
class Workers:
    procs: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def wait(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        codes = []
        for p in self.procs:
            try:
                codes.append(p.wait(timeout=max(1.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"workers did not finish in {timeout} s:\n{self.tail()}"
                ) from None
        return codes

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

    def tail(self, n: int = 15) -> str:
        out = []
        for log in self.logs:
            text = log.read_text(errors="replace").splitlines() if log.exists() else []
            out.append(f"--- {log.name}\n" + "\n".join(text[-n:]))
        return "\n".join(out)


def start_workers(
    n: int,
    *,
    study: str,
    storage: str,
    data_dir: Path | str,
    budget: int,
    sampler: str,
    log_dir: Path,
    extra: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    seed0: int = 0,
) -> Workers:
    procs, logs = [], []
    for i in range(n):
        log = log_dir / f"{study}-{sampler}-{i}.log"
        cmd = [
            sys.executable,
            "-m",
            "ncp_hpo.cli",
            "worker",
            "--study-name",
            study,
            "--no-mlflow",
            "--storage",
            storage,
            "--benchmark",
            "nas-bench-201",
            "--data-dir",
            str(data_dir),
            "--sampler",
            sampler,
            "--trials",
            str(budget),
            "--seed",
            str(seed0 + i),
            *extra,
        ]
        with open(log, "wb") as fh:
            procs.append(
                subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env or worker_env())
            )
        logs.append(log)
    return Workers(procs, logs)


def _key(t: FrozenTrial) -> tuple[Any, ...]:
    return tuple(sorted(t.params.items()))


@dataclass
class Audit:
    """What a finished study holds, for the assertions."""

    trials: list[FrozenTrial]
    states: Counter[str] = field(default_factory=Counter)
    over_budget: int = 0
    duplicates: int = 0
    concurrent_duplicates: int = 0

    @property
    def complete(self) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state == TrialState.COMPLETE]

    def line(self) -> str:
        return (
            f"{len(self.complete)} complete, {self.states.get('FAIL', 0)} failed, "
            f"{self.over_budget} over budget, {self.duplicates} duplicate codes "
            f"({self.concurrent_duplicates} concurrent)"
        )


def audit(study: optuna.Study) -> Audit:
    trials = study.get_trials(deepcopy=False)
    a = Audit(trials)
    for t in trials:
        a.states[t.state.name] += 1
        a.over_budget += bool(t.user_attrs.get("over_budget"))
    first: dict[tuple[Any, ...], FrozenTrial] = {}
    for t in sorted(a.complete, key=lambda t: t.number):
        k = _key(t)
        if k in first:
            a.duplicates += 1
            o = first[k]
            assert o.datetime_start and o.datetime_complete and t.datetime_start
            if t.datetime_start < o.datetime_complete:  # it ran while the other was running
                a.concurrent_duplicates += 1
        else:
            first[k] = t
    return a


def load(study: str, storage: str) -> optuna.Study:
    from ncp_hpo.runtime import open_storage

    return optuna.load_study(study_name=study, storage=open_storage(storage, heartbeat=None))
