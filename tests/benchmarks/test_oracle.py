"""Surrogate oracle: cache (pickle-free, keyed, atomic), fidelity, table hits, spread, snapping."""

from __future__ import annotations

import argparse
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from _data_helpers import files_under

from ncp_hpo.benchmarks import (
    Fidelity,
    OracleCacheWarning,
    OracleConfig,
    SurrogateOracle,
    TableSnapper,
    UnsupportedSettingError,
    load_benchmark,
    load_oracle,
    oracle_cache_path,
    oracle_features,
)
from ncp_hpo.cli.data import register_data_commands
from ncp_hpo.exceptions import DataError, InvalidCodeError, NCPError
from ncp_hpo.spaces.cost import flops, params

# Small enough for the test budget, same model family and code path as the default.
SMALL = OracleConfig(members=3, max_iter=100, learning_rate=0.1)
TINY = OracleConfig(members=2, max_iter=15, cv_folds=2, metrics=("mIoU",))


@pytest.fixture(scope="session")
def seg_oracle(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SurrogateOracle:
    table = load_benchmark("seg", shared_data_dir)
    # Shared with test_objectives.py (same folder and config): a full run fits once.
    return load_oracle(
        table, config=SMALL, cache=tmp_path_factory.getbasetemp() / "ncp-oracle-cache"
    )


@pytest.fixture
def seg(seg_oracle: SurrogateOracle):  # type: ignore[no-untyped-def]
    """The seg table (the oracle's own, loaded once per session)."""
    return seg_oracle.table


def _off_table(table, n: int, seed: int = 0) -> np.ndarray:  # type: ignore[no-untyped-def]
    codes = table.space.sample(n, seed=seed)
    assert not any(c in table for c in codes)
    return codes


# -- cache --------------------------------------------------------------------------------
def test_second_construction_loads_fast_with_identical_predictions(
    seg_oracle: SurrogateOracle, seg, tmp_path: Path
) -> None:
    path = seg_oracle.path
    assert path is not None and path.is_file() and path.suffix == ".npz"
    assert path.parent.name == "oracles" and path.name.startswith("seg-")
    # No pickle inside: every member of the npz loads with allow_pickle=False.
    with np.load(path, allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)
    start = time.perf_counter()
    again = load_oracle(seg, config=SMALL, cache=path.parent.parent)
    elapsed = time.perf_counter() - start
    assert again.load_seconds is not None and again.path == path
    assert elapsed < 1.0 and elapsed < seg_oracle.fit_seconds / 5, (elapsed, seg_oracle.fit_seconds)
    codes = _off_table(seg, 64)
    for metric in seg_oracle.metrics:
        a, sa = seg_oracle.predict(codes, metric, return_std=True)
        b, sb = again.predict(codes, metric, return_std=True)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(sa, sb)
    assert again.fidelity == seg_oracle.fidelity and again.key == seg_oracle.key
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporaries left


def test_key_changes_with_data_hyper_parameters_and_seed(seg_oracle: SurrogateOracle, seg) -> None:
    base = oracle_cache_path(seg, config=SMALL, cache="/c")
    assert base.name == seg_oracle.path.name  # type: ignore[union-attr]
    others = {
        oracle_cache_path(seg.subset(range(2500)), config=SMALL, cache="/c"),
        oracle_cache_path(
            seg, config=OracleConfig(members=3, max_iter=101, learning_rate=0.1), cache="/c"
        ),
        oracle_cache_path(seg, config=SMALL, seed=1, cache="/c"),
        oracle_cache_path(seg, cache="/c"),
    }
    assert base not in others and len(others) == 4
    # A table whose values changed (same upstream checksum, same codes) is refused.
    metrics = dict(seg.metrics)
    metrics["mIoU"] = metrics["mIoU"] + 0.01
    changed = type(seg)(
        name=seg.name,
        codes=seg.codes,
        metrics=metrics,
        main_metric=seg.main_metric,
        space=seg.space,
        sha256=seg.sha256,
    )
    assert oracle_cache_path(changed, config=SMALL, cache="/c") != base
    with pytest.raises(DataError, match="other data"):
        SurrogateOracle.load(seg_oracle.path, changed)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="expected"):
        SurrogateOracle.load(seg_oracle.path, seg, expected_key="0" * 64)  # type: ignore[arg-type]


def test_corrupt_cache_is_refused_then_rebuilt_deterministically(seg, tmp_path: Path) -> None:
    table = seg.subset(range(600))
    first = load_oracle(table, config=TINY, cache=tmp_path)
    path = first.path
    assert path is not None
    codes = _off_table(seg, 16, seed=3)
    expected = first.predict(codes, return_std=True)
    good = path.read_bytes()

    def rebuilt() -> SurrogateOracle:
        with pytest.warns(OracleCacheWarning, match="refitting"):
            o = load_oracle(table, config=TINY, cache=tmp_path)
        assert o.load_seconds is None  # fitted, not loaded
        for a, b in zip(o.predict(codes, return_std=True), expected, strict=True):
            np.testing.assert_array_equal(a, b)  # same seed -> same model
        assert files_under(tmp_path) == [f"oracles/{path.name}"]
        SurrogateOracle.load(path, table)  # the rebuilt file is valid
        return o

    path.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(DataError, match="unreadable"):
        SurrogateOracle.load(path, table)
    rebuilt()

    # Same header, one leaf value changed: the array digest no longer matches.
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["value"] = arrays["value"].copy()
    arrays["value"][np.flatnonzero(arrays["value"])[0]] += 1.0
    np.savez(path, **arrays)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="digest"):
        SurrogateOracle.load(path, table)
    rebuilt()

    # A pickled object array is never unpickled.
    arrays["value"] = np.array([{"x": 1}], dtype=object)
    np.savez(path, allow_pickle=True, **arrays)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="unreadable"):
        SurrogateOracle.load(path, table)
    rebuilt()

    # Not a zip at all.
    path.write_text("garbage")
    with pytest.raises(DataError):
        SurrogateOracle.load(path, table)
    rebuilt()


def test_failed_write_leaves_no_partial_file(
    seg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oracle = SurrogateOracle.fit(seg.subset(range(300)), config=TINY)
    target = tmp_path / "oracles" / "x.npz"

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("ncp_hpo.benchmarks._store.os.replace", boom)
    with pytest.raises(OSError, match="disk full"):
        oracle.save(target)
    assert files_under(tmp_path) == []


def test_unwritable_cache_warns_and_still_returns_the_oracle(
    seg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(path: Path, data: bytes) -> None:
        raise PermissionError(13, "read-only file system")

    monkeypatch.setattr("ncp_hpo.benchmarks._store._atomic_write", read_only)
    with pytest.warns(OracleCacheWarning, match="could not cache"):
        oracle = load_oracle(seg.subset(range(300)), config=TINY, cache=tmp_path)
    assert oracle.path is None and files_under(tmp_path) == []
    assert oracle.evaluate(seg.codes[400]).source == "surrogate"


def test_header_is_json_and_records_fidelity(seg_oracle: SurrogateOracle) -> None:
    with zipfile.ZipFile(seg_oracle.path) as zf:  # type: ignore[arg-type]
        assert "meta.npy" in zf.namelist()
    with np.load(seg_oracle.path, allow_pickle=False) as npz:  # type: ignore[arg-type]
        meta = json.loads(str(npz["meta"][()]))
    assert meta["key"] == seg_oracle.key and meta["metrics"] == ["mIoU", "mAcc", "aAcc"]
    assert Fidelity.from_dict(meta["fidelity"]) == seg_oracle.fidelity
    assert meta["key_fields"]["config"] == SMALL.to_dict()


# -- fidelity and predictions -------------------------------------------------------------
def test_fidelity_in_sane_ranges(seg_oracle: SurrogateOracle) -> None:
    f = seg_oracle.fidelity
    print(f"seg fidelity (SMALL config): {f.summary()}; fit {seg_oracle.fit_seconds:.1f}s")
    assert f.metric == "mIoU" and f.folds == 5 and f.rows == 2507
    assert 0.8 < f.spearman <= 1.0 and 0.6 < f.kendall < f.spearman
    assert 0.3 < f.mae < 1.5 and f.mae <= f.rmse < 3.0
    assert f.spread_mean > 0 and np.isfinite(f.spread_error_spearman)


def test_table_hits_are_exact(seg_oracle: SurrogateOracle, seg) -> None:
    rows = [0, 17, 999, 2506]
    results = seg_oracle.evaluate_many(seg.codes[rows])
    for row, r in zip(rows, results, strict=True):
        assert r.source == "table" and r.table_index == row and r.std == 0.0
        assert dict(r.metrics) == {k: float(v[row]) for k, v in seg.metrics.items()}
        assert r.value == seg.main[row] and r.fidelity == seg_oracle.fidelity
    text = seg.space.encode(seg.codes[17])
    assert seg_oracle.evaluate(text).value == seg.main[17]


def test_off_table_codes_go_to_the_surrogate_with_spread(seg_oracle: SurrogateOracle, seg) -> None:
    codes = _off_table(seg, 50, seed=7)
    results = seg_oracle.evaluate_many(codes)
    lo, hi = seg.main.min(), seg.main.max()
    for code, r in zip(codes, results, strict=True):
        assert r.source == "surrogate" and r.table_index is None
        assert lo - 5 < r.value < hi + 5 and r.std > 0 and np.isfinite(r.std)
        assert set(r.metrics) == {"mIoU", "mAcc", "aAcc", "flops", "params"}
        assert r.metrics["flops"] == flops(code, convention="thop") / 1e9
        assert r.metrics["params"] == params(code) / 1e6
        assert r.stds["flops"] == 0.0 and r.fidelity is seg_oracle.fidelity
    mean, std = seg_oracle.predict(codes, return_std=True)
    np.testing.assert_allclose(mean, [r.value for r in results])
    np.testing.assert_allclose(std, [r.std for r in results])
    d = results[0].to_dict()
    assert (
        json.loads(json.dumps(d)) == d and d["fidelity"]["spearman"] == seg_oracle.fidelity.spearman
    )


def test_surrogate_tracks_the_table_in_sample(seg_oracle: SurrogateOracle, seg) -> None:
    pred = seg_oracle.predict(seg.codes)
    assert np.corrcoef(pred, seg.main)[0, 1] > 0.95


def test_invalid_inputs_are_clear_errors(
    seg_oracle: SurrogateOracle, shared_data_dir: Path
) -> None:
    code = seg_oracle.table.codes[0].astype(float)
    code[3] = np.nan
    with pytest.raises(InvalidCodeError, match="not an integer"):
        seg_oracle.evaluate(code)
    with pytest.raises(InvalidCodeError):
        seg_oracle.evaluate(np.zeros(26))
    with pytest.raises(InvalidCodeError):
        oracle_features([[0] * 27])
    with pytest.raises(ValueError, match="not modelled"):
        seg_oracle.predict(seg_oracle.table.codes[:2], "flops")
    with pytest.raises(UnsupportedSettingError, match="exactly"):
        load_oracle("nas-bench-201", data_dir=shared_data_dir, cache=False)
    with pytest.raises(ValueError, match="top1"):
        load_oracle(seg_oracle.table, config=OracleConfig(metrics=("top1",)), cache=False)
    for bad in ({"members": 0}, {"subsample": 1.5}, {"cv_folds": 1}, {"learning_rate": -1.0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            OracleConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        oracle_cache_path(seg_oracle.table, seed=-1)


# -- table-restricted snapping ------------------------------------------------------------
def test_snapping_returns_unused_table_codes(seg) -> None:
    snapper = TableSnapper(seg)
    used: set[int] = set()
    row, dist = snapper.snap(seg.codes[42], used)
    assert (row, dist) == (42, 0.0) and used == {42}
    proposal = seg.space.sample(1, seed=11)[0]
    rows = [snapper.snap(proposal, used)[0] for _ in range(30)]
    assert len(set(rows)) == 30 and 42 not in rows and used == {42, *rows}
    z = (seg.codes - snapper.mean) / snapper.scale
    d = np.linalg.norm(z - (proposal - snapper.mean) / snapper.scale, axis=1)
    nearest_first = [int(r) for r in np.argsort(d, kind="stable") if r != 42]
    assert rows == nearest_first[:30]
    assert np.isclose(snapper.nearest(proposal)[1], d.min())
    # another tracker is independent
    assert snapper.snap(proposal, set())[0] == rows[0]


def test_snapping_exhausts_a_small_table(seg) -> None:
    small = seg.subset(range(5))
    snapper = TableSnapper(small)
    used: set[int] = set()
    code = seg.codes[100]
    assert sorted(snapper.snap(code, used)[0] for _ in range(5)) == [0, 1, 2, 3, 4]
    with pytest.raises(NCPError, match="all 5 codes"):
        snapper.snap(code, used)


# -- CLI ----------------------------------------------------------------------------------
def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ncp-hpo")
    register_data_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_data_info_shows_cached_fidelity(
    seg_oracle: SurrogateOracle,
    shared_data_dir: Path,
    isolated_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run("data", "info", "seg", "--data-dir", str(shared_data_dir)) == 0
    out = capsys.readouterr().out
    assert "surrogate oracle" in out and "not fitted yet" in out and "--oracle" in out
    seg_oracle.save(oracle_cache_path(seg_oracle.table, config=SMALL, cache=isolated_env))
    assert _run("data", "info", "seg", "--data-dir", str(shared_data_dir)) == 0
    out = capsys.readouterr().out
    f = seg_oracle.fidelity
    assert f"Spearman {f.spearman:.3f}" in out and f"Kendall {f.kendall:.3f}" in out
    assert "MAE" in out and "members=3" in out
    assert _run("data", "info", "nas-bench-201", "--data-dir", str(shared_data_dir)) == 0
    assert "complete table" in capsys.readouterr().out


def test_packed_trees_reproduce_scikit_learn_exactly() -> None:
    """Pins scikit-learn's private HistGradientBoostingRegressor tree layout (the one place
    that reads it is ``hgb_trees``): this fails when a scikit-learn release changes it."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    from ncp_hpo.benchmarks._forest import Forest, hgb_trees

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6))
    y = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.1 * rng.normal(size=400)
    models = [
        HistGradientBoostingRegressor(max_iter=30, max_leaf_nodes=7, random_state=s).fit(x, y + s)
        for s in (0, 1)
    ]
    baseline, trees = hgb_trees(models[0])
    assert len(trees) == 30 and baseline == pytest.approx(float(np.mean(y)))
    names = set(trees[0].dtype.names or ())
    assert {"value", "feature_idx", "num_threshold", "left", "right", "is_leaf", "depth"} <= names
    forest = Forest.from_models(models, n_features=6)
    x_new = rng.normal(size=(300, 6))
    ours = forest.predict(x_new)
    theirs = np.stack([m.predict(x_new) for m in models], axis=1)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    assert forest.n_groups == 2 and len(forest.roots) == 60
