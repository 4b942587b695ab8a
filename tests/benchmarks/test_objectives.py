"""Benchmark objectives in real Optuna studies: surrogate, table-restricted and NB201 exact."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import sqlalchemy

from ncp_hpo.benchmarks import (
    BenchmarkObjective,
    NB201Objective,
    OracleConfig,
    SurrogateOracle,
    load_benchmark,
    load_oracle,
)
from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.spaces.cost import flops

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Same config as test_oracle.py, and the same cache folder, so a full run fits once.
SMALL = OracleConfig(members=3, max_iter=100, learning_rate=0.1)


@pytest.fixture(scope="session")
def oracle_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "ncp-oracle-cache"


@pytest.fixture(scope="session")
def seg_oracle(shared_data_dir: Path, oracle_cache: Path) -> SurrogateOracle:
    return load_oracle(load_benchmark("seg", shared_data_dir), config=SMALL, cache=oracle_cache)


def _sqlite(path: Path) -> optuna.storages.RDBStorage:
    """A SQLite storage without per-commit fsync (this CI disk takes ~25 ms per fsync and
    every suggested parameter is a commit); same schema and code path otherwise."""
    storage = optuna.storages.RDBStorage(f"sqlite:///{path}")

    @sqlalchemy.event.listens_for(storage.engine, "connect")
    def _no_fsync(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA synchronous=OFF")

    storage.engine.dispose()  # reconnect through the listener
    return storage


def _study(tmp_path: Path, obj: BenchmarkObjective, seed: int = 0) -> optuna.Study:
    return optuna.create_study(
        storage=_sqlite(tmp_path / "study.db"),
        study_name="s",
        directions=obj.directions,
        sampler=optuna.samplers.RandomSampler(seed=seed),
        load_if_exists=True,
    )


def test_single_objective_study_with_surrogate(seg_oracle: SurrogateOracle, tmp_path: Path) -> None:
    obj = BenchmarkObjective("seg", oracle=seg_oracle)
    table = obj.table
    assert obj.mode == "surrogate" and obj.directions == ["maximize"]
    study = _study(tmp_path, obj)
    study.enqueue_trial(table.space.to_params(table.codes[5]))
    study.optimize(obj, n_trials=20)
    trials = optuna.load_study(study_name="s", storage=study._storage).trials  # from SQLite
    assert len(trials) == 20 and all(t.state.name == "COMPLETE" for t in trials)
    hit = trials[0].user_attrs
    assert hit["source"] == "table" and hit["table_index"] == 5 and hit["std"] == 0.0
    assert trials[0].value == hit["table_value"] == table.main[5]
    for t in trials[1:]:
        a = t.user_attrs
        assert a["source"] == "surrogate" and a["table_index"] is None and a["std"] > 0
        assert "table_value" not in a
        assert a["fidelity"]["spearman"] == seg_oracle.fidelity.spearman
        code = table.space.from_params(t.params)
        assert a["code"] == table.space.encode(code)
        assert a["flops"] == flops(code, convention="thop") / 1e9 == a["metrics"]["flops"]
        assert t.value == a["metrics"]["mIoU"] == obj.evaluate(t.params)["value"]


def test_multi_objective_study(seg_oracle: SurrogateOracle, tmp_path: Path) -> None:
    obj = BenchmarkObjective("seg", oracle=seg_oracle, objective="metric+flops")
    assert obj.directions == ["maximize", "minimize"] and obj.objective_names == ["mIoU", "flops"]
    study = _study(tmp_path, obj)
    study.optimize(obj, n_trials=20)
    assert len(study.trials) == 20 and study.best_trials
    for t in study.trials:
        code = obj.space.from_params(t.params)
        assert t.values == [t.user_attrs["metrics"]["mIoU"], flops(code, convention="thop") / 1e9]


def test_scalarised_objective(seg_oracle: SurrogateOracle) -> None:
    obj = BenchmarkObjective("seg", oracle=seg_oracle, objective="metric+flops", flops_weight=0.5)
    assert obj.directions == ["maximize"] and obj.objective_names == ["mIoU - 0.5*z(flops)"]
    fl = obj.table.metrics["flops"]
    assert obj.flops_mean == pytest.approx(fl.mean()) and obj.flops_std == pytest.approx(fl.std())
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    study.optimize(obj, n_trials=10)
    for t in study.trials:
        a = t.user_attrs
        want = a["metrics"]["mIoU"] - 0.5 * (a["flops"] - fl.mean()) / fl.std()
        assert t.value == pytest.approx(want, rel=1e-12)


def test_lam_is_a_deprecated_name_of_flops_weight(seg_oracle: SurrogateOracle) -> None:
    with pytest.warns(FutureWarning, match="flops_weight"):
        old = BenchmarkObjective("seg", oracle=seg_oracle, objective="metric+flops", lam=0.5)
    assert old.flops_weight == 0.5 and old.objective_names == ["mIoU - 0.5*z(flops)"]
    with pytest.warns(FutureWarning, match=r"\.flops_weight"):
        assert old.lam == 0.5
    with pytest.raises(TypeError, match="flops_weight only"):
        BenchmarkObjective(
            "seg", oracle=seg_oracle, objective="metric+flops", flops_weight=0.5, lam=0.5
        )


def test_table_mode_never_repeats_a_code_per_study(shared_data_dir: Path, tmp_path: Path) -> None:
    obj = BenchmarkObjective("seg", mode="table", data_dir=shared_data_dir)
    assert obj.oracle is None and obj.snapper is not None
    table = obj.table
    study = _study(tmp_path, obj)
    study.enqueue_trial(table.space.to_params(table.codes[7]))
    study.optimize(obj, n_trials=20)
    # resumed by a fresh objective: the used rows come from the stored trials
    again = BenchmarkObjective("seg", mode="table", data_dir=shared_data_dir)
    _study(tmp_path, again, seed=1).optimize(again, n_trials=10)
    trials = _study(tmp_path, again).trials
    rows = [t.user_attrs["snapped_index"] for t in trials]
    assert len(rows) == 30 and len(set(rows)) == 30 and rows[0] == 7
    for t, row in zip(trials, rows, strict=True):
        a = t.user_attrs
        assert a["source"] == "table" and a["table_index"] == row and a["snap_distance"] >= 0
        assert t.value == table.main[row] == a["table_value"]
        assert a["code"] == table.space.encode(table.codes[row])
    # outside a study: the objective's own tracker
    params = table.space.to_params(table.codes[7])
    first, second = obj(optuna.trial.FixedTrial(params)), obj(optuna.trial.FixedTrial(params))
    assert first == table.main[7] and second != first
    obj.reset()
    used: set[int] = set()
    assert obj.evaluate(params, used=used)["snapped_index"] == 7 and used == {7}
    assert obj.evaluate(params)["snapped_index"] == 7


def test_nb201_objective_is_exact(shared_data_dir: Path) -> None:
    obj = NB201Objective(data_dir=shared_data_dir)
    table = obj.table
    assert obj.mode == "exact" and obj.oracle is None and obj.directions == ["maximize"]
    codes = table.space.sample(300, seed=0)
    for code in codes:
        res = obj.evaluate(code)
        row = table.query(code)
        assert res["source"] == "table" and res["value"] == row["Acc"] == res["objective"]
        assert res["fidelity"] is None and res["metrics"]["flops"] == row["flops"]
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(obj, n_trials=20)
    for t in study.trials:
        assert t.value == table.query(table.space.from_params(t.params))["Acc"]
        assert t.user_attrs["source"] == "table" and "fidelity" not in t.user_attrs
    mo = NB201Objective(data_dir=shared_data_dir, objective="metric+flops")
    res = mo.evaluate(table.codes[10])
    assert res["objective"] == [table.main[10], table.metrics["flops"][10]]
    same = BenchmarkObjective("nas-bench-201", data_dir=shared_data_dir, mode="surrogate")
    assert same.mode == "exact" and same.oracle is None


def test_metric_and_parameters_are_two_objectives(shared_data_dir: Path) -> None:
    obj = NB201Objective(data_dir=shared_data_dir, objective="metric+params")
    table = obj.table
    assert obj.cost == "params" and obj.n_objectives == 2
    assert obj.directions == ["maximize", "minimize"] and obj.objective_names == ["Acc", "params"]
    res = obj.evaluate(table.codes[10])
    assert res["objective"] == [table.main[10], table.metrics["params"][10]]
    study = optuna.create_study(directions=obj.directions, sampler=optuna.samplers.RandomSampler(0))
    study.optimize(obj, n_trials=5)
    for t in study.trials:
        row = table.query(table.space.from_params(t.params))
        assert t.values == [row["Acc"], row["params"]]
    assert BenchmarkObjective("nas-bench-201", data_dir=shared_data_dir).cost is None
    two = "use it with objective='metric\\+flops' .*is two objectives, the metric and params"
    with pytest.raises(ValueError, match=two):
        NB201Objective(data_dir=shared_data_dir, objective="metric+params", flops_weight=0.5)
    with pytest.raises(ValueError, match="'metric\\+params'"):
        NB201Objective(data_dir=shared_data_dir, objective="params")  # type: ignore[arg-type]


def test_evaluate_is_json_ready_and_fast(seg_oracle: SurrogateOracle) -> None:
    obj = BenchmarkObjective("seg", oracle=seg_oracle, objective="metric+flops")
    codes = obj.space.sample(100, seed=5)
    obj.evaluate(codes[0])  # first call imports the cost model
    start = time.perf_counter()
    results = [obj.evaluate(c) for c in codes]
    per_call = (time.perf_counter() - start) / len(codes)
    assert per_call < 0.02, per_call  # ~2 ms measured; a 100-trial study adds well under 1 s
    r = results[0]
    assert json.loads(json.dumps(r)) == r
    assert r["objective"] == [r["value"], r["metrics"]["flops"]] and r["source"] == "surrogate"
    assert obj.evaluate(r["code"]) == r  # the string form evaluates to the same result
    assert obj.evaluate(obj.space.to_params(codes[0])) == r  # so does an Optuna/Ax param dict


def test_loads_the_cached_oracle_by_config(
    seg_oracle: SurrogateOracle, shared_data_dir: Path, oracle_cache: Path
) -> None:
    obj = BenchmarkObjective(
        "seg", data_dir=shared_data_dir, oracle_config=SMALL, cache=oracle_cache
    )
    assert obj.oracle is not None and obj.oracle.key == seg_oracle.key
    assert obj.oracle.load_seconds is not None


def test_argument_and_input_errors(seg_oracle: SurrogateOracle, shared_data_dir: Path) -> None:
    with pytest.raises(ValueError, match="objective='metric\\+flops'"):
        BenchmarkObjective("seg", oracle=seg_oracle, flops_weight=0.5)
    for w in (-1.0, float("nan"), True, "0.5"):
        with pytest.raises(ValueError, match="flops_weight must be"):
            BenchmarkObjective("seg", oracle=seg_oracle, objective="metric+flops", flops_weight=w)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        BenchmarkObjective("seg", oracle=seg_oracle, mode="oracle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="objective"):
        BenchmarkObjective("seg", oracle=seg_oracle, objective="flops")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="complete table"):
        BenchmarkObjective("seg", data_dir=shared_data_dir, mode="exact")
    with pytest.raises(ValueError, match="mode='surrogate'"):
        BenchmarkObjective("seg", oracle=seg_oracle, mode="table")
    with pytest.raises(ValueError, match="'seg', not 'video'"):
        BenchmarkObjective("video", oracle=seg_oracle)
    with pytest.raises(ValueError, match="NB201Objective mode"):
        NB201Objective(mode="surrogate", data_dir=shared_data_dir)  # type: ignore[arg-type]

    obj = BenchmarkObjective("seg", oracle=seg_oracle)
    bad = obj.table.codes[0].astype(float)
    bad[0] = np.nan
    with pytest.raises(InvalidCodeError, match="not an integer"):
        obj.evaluate(bad)
    with pytest.raises(InvalidCodeError, match="above the maximum"):
        obj.evaluate(np.r_[obj.table.codes[0][:-1], 136])
    with pytest.raises(InvalidCodeError, match="missing"):
        obj.evaluate({"i1": 64})
    with pytest.raises(InvalidCodeError):
        obj.evaluate("not-a-code")
    nb = NB201Objective(data_dir=shared_data_dir)
    params = nb.space.to_params(nb.table.codes[0]) | {"e1_0": "conv_5x5"}
    with pytest.raises(InvalidCodeError, match="conv_5x5"):
        nb.evaluate(params)
