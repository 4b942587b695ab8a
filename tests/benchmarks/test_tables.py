"""Loaded tables: measured facts, lookups, splits, and the inferred NAS-Bench-201 order."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import numpy as np
import pytest
from _data_helpers import MR_SETTINGS_LOCAL

from ncp_hpo.benchmarks import NB201_FILE_OPS, BenchmarkTable, load_benchmark
from ncp_hpo.exceptions import InvalidCodeError
from ncp_hpo.spaces.multires import MultiResolutionSpace
from ncp_hpo.spaces.nb201 import EDGE_NAMES, EDGES, OPS, NB201Space

NB = "nas-bench-201"


@pytest.fixture(scope="module")
def nb201(shared_data_dir: Path) -> BenchmarkTable:
    return load_benchmark(NB, shared_data_dir)


@pytest.fixture(scope="module")
def seg(shared_data_dir: Path) -> BenchmarkTable:
    return load_benchmark("seg", shared_data_dir)


# -- NAS-Bench-MR --------------------------------------------------------------------------
def test_mr_settings_share_codes_and_costs(shared_data_dir: Path) -> None:
    tables = [load_benchmark(s, shared_data_dir) for s in MR_SETTINGS_LOCAL]
    ref = tables[0]
    assert ref.codes.shape == (2507, 27) and ref.codes.dtype == np.int64
    assert len({row.tobytes() for row in ref.codes}) == 2507
    assert isinstance(ref.space, MultiResolutionSpace)
    for t in tables[1:]:
        np.testing.assert_array_equal(t.codes, ref.codes)
        np.testing.assert_array_equal(t.metrics["flops"], ref.metrics["flops"])
        np.testing.assert_array_equal(t.metrics["params"], ref.metrics["params"])
    for t in tables:
        assert t.main_metric in ("top1", "mIoU")
        assert set(t.metrics) >= {t.main_metric, "flops", "params"}
        assert all(v.dtype == np.float64 and v.shape == (2507,) for v in t.metrics.values())


def test_seg_facts(seg: BenchmarkTable) -> None:
    assert seg.main_metric == "mIoU" and list(seg.metrics) == [
        "mIoU",
        "mAcc",
        "aAcc",
        "flops",
        "params",
    ]
    assert seg.main.max() == pytest.approx(79.1)
    assert seg.main.mean() == pytest.approx(72.59, abs=0.005)
    flops = seg.metrics["flops"]
    assert seg.main[flops <= 1.0].max() == pytest.approx(77.17)
    assert seg.main[flops <= 1.5].max() == pytest.approx(77.52)


def test_query_is_exact_lookup(seg: BenchmarkTable) -> None:
    i = 1234
    row = seg.query(seg.codes[i])
    assert row == {k: float(v[i]) for k, v in seg.metrics.items()}
    assert seg.query(seg.codes[i].astype(float)) == row  # integral floats accepted
    assert seg.query(MultiResolutionSpace().encode(seg.codes[i])) == row  # string form
    absent = seg.codes[i].copy()
    absent[0] = 8 if absent[0] != 8 else 16
    if seg.index(absent) is None:
        assert seg.query(absent) is None and absent.tolist() not in seg
    assert seg.codes[i] in seg
    with pytest.raises(InvalidCodeError, match=r"shape \(27,\)"):
        seg.query(seg.codes[:2])


def test_tables_are_read_only_and_cached(shared_data_dir: Path, seg: BenchmarkTable) -> None:
    with pytest.raises(ValueError, match="read-only"):
        seg.codes[0, 0] = 8
    with pytest.raises(ValueError, match="read-only"):
        seg.metrics["mIoU"][0] = 0.0
    with pytest.raises(TypeError):
        seg.metrics["new"] = seg.main  # type: ignore[index]
    first = load_benchmark("seg", shared_data_dir)
    t0 = time.perf_counter()
    assert load_benchmark("seg", shared_data_dir) is first
    assert time.perf_counter() - t0 < 0.05


def test_first_load_is_fast(shared_data_dir: Path) -> None:
    from ncp_hpo.benchmarks import clear_cache

    clear_cache()
    t0 = time.perf_counter()
    load_benchmark(NB, shared_data_dir)
    assert time.perf_counter() - t0 < 2.0  # ~0.1 s measured; generous for slow CI


def test_split_is_deterministic_and_disjoint(seg: BenchmarkTable) -> None:
    tr, va, te = seg.split(1000, 200, seed=7)
    assert (len(tr), len(va), len(te)) == (1000, 200, 1307)
    assert len(np.unique(np.concatenate([tr, va, te]))) == len(seg)
    tr2, _, te2 = seg.split(1000, 200, seed=7)
    np.testing.assert_array_equal(tr, tr2)
    np.testing.assert_array_equal(te, te2)
    assert not np.array_equal(tr, seg.split(1000, 200, seed=8)[0])
    sub = seg.subset(va)
    assert len(sub) == 200 and sub.query(seg.codes[va[0]]) == seg.query(seg.codes[va[0]])
    with pytest.raises(ValueError, match="exceeds"):
        seg.split(2500, 10)
    with pytest.raises(ValueError, match="non-negative"):
        seg.split(-1)


# -- NAS-Bench-201 -------------------------------------------------------------------------
def test_nb201_facts(nb201: BenchmarkTable) -> None:
    assert nb201.codes.shape == (15625, 30) and isinstance(nb201.space, NB201Space)
    assert list(nb201.metrics) == ["Acc", "flops", "params"] and nb201.main_metric == "Acc"
    acc, flops = nb201.main, nb201.metrics["flops"]
    order = np.argsort(-acc, kind="stable")
    assert acc[order[0]] == pytest.approx(47.333, abs=5e-4)
    assert flops[order[0]] == pytest.approx(153.28)
    assert acc[order[9]] == pytest.approx(46.8, abs=5e-4)
    assert np.any(np.isclose(acc, 47.033, atol=5e-4) & np.isclose(flops, 86.43))
    assert np.any(np.isclose(acc, 46.8, atol=5e-4) & np.isclose(flops, 90.36))


def test_nb201_covers_every_cell_once(nb201: BenchmarkTable) -> None:
    space = NB201Space()
    space.validate(nb201.codes)
    all_cells = {r.tobytes() for r in space.enumerate_all()}
    assert {r.tobytes() for r in nb201.codes} == all_cells
    assert len(nb201._index) == 15625
    best = nb201.codes[np.argmax(nb201.main)]
    assert nb201.query(space.encode(best))["Acc"] == nb201.main.max()  # type: ignore[index]


def _cell(**ops: str) -> np.ndarray:
    params = dict.fromkeys(EDGE_NAMES, "none") | ops
    return NB201Space().from_params(params)


def test_nb201_conv_slots_from_flops(nb201: BenchmarkTable) -> None:
    """All-3x3 is the most expensive cell; convs cost, other ops are free; 3x3 = 9 x 1x1."""
    flops = nb201.metrics["flops"]
    all3 = _cell(**dict.fromkeys(EDGE_NAMES, "nor_conv_3x3"))
    assert nb201.query(all3)["flops"] == flops.max()  # type: ignore[index]
    base = nb201.query(_cell())["flops"]  # type: ignore[index]
    for op in ("skip_connect", "avg_pool_3x3"):
        assert nb201.query(_cell(**dict.fromkeys(EDGE_NAMES, op)))["flops"] == base  # type: ignore[index]
    c1 = nb201.query(_cell(e2_1="nor_conv_1x1"))["flops"] - base  # type: ignore[index]
    c3 = nb201.query(_cell(e2_1="nor_conv_3x3"))["flops"] - base  # type: ignore[index]
    assert c1 == pytest.approx(3.93, abs=0.01) and c3 / c1 == pytest.approx(9, rel=0.01)


def _disconnected(idx: np.ndarray) -> bool:
    """Whether every path from node 0 to node 3 crosses a ``none`` edge."""
    live = {0}
    for to in (1, 2, 3):
        if any(idx[k] != 0 and frm in live for k, (t, frm) in enumerate(EDGES) if t == to):
            live.add(to)
    return 3 not in live


def test_nb201_none_slot_and_edge_order_from_chance_accuracy(nb201: BenchmarkTable) -> None:
    """Every cell cut off from the input sits at chance accuracy, 100/120 %: 341 cells, plus
    4 connected cells that failed to train."""
    idx = NB201Space().to_indices(nb201.codes)
    dead = np.array([_disconnected(r) for r in idx])
    acc = nb201.main
    chance = np.isclose(acc, 100 / 120, atol=1e-6)
    assert acc.min() == pytest.approx(100 / 120, abs=1e-6)
    assert dead.sum() == 341 and chance.sum() == 345
    assert np.all(chance[dead])
    out_none = (idx[:, 3] == 0) & (idx[:, 4] == 0) & (idx[:, 5] == 0)  # e3_0, e3_1, e3_2
    assert out_none.sum() == 125 and np.all(chance[out_none])


def _functional_classes(idx: np.ndarray) -> list[str]:
    """A canonical expression of each cell's function (skip = identity, none = zero)."""
    out = []
    for row in idx:
        node = {0: "x"}
        for to in (1, 2, 3):
            terms = []
            for k, (t, frm) in enumerate(EDGES):
                if t != to or node[frm] == "0" or OPS[row[k]] == "none":
                    continue
                op = OPS[row[k]]
                terms.append(node[frm] if op == "skip_connect" else f"{op}({node[frm]})")
            if not terms:
                node[to] = "0"
            elif len(terms) == 1:
                node[to] = terms[0]
            else:
                node[to] = "[" + "+".join(sorted(terms)) + "]"
        out.append(node[3])
    return out


def _within_class_std(acc: np.ndarray, labels: list[str]) -> float:
    groups = collections.defaultdict(list)
    for a, lab in zip(acc, labels, strict=True):
        groups[lab].append(a)
    ss = n = k = 0.0
    for g in groups.values():
        if len(g) > 1:
            arr = np.asarray(g)
            ss += float(((arr - arr.mean()) ** 2).sum())
            n += len(g)
            k += 1
    return float(np.sqrt(ss / (n - k)))


def test_nb201_skip_vs_pool_from_functional_equivalence(nb201: BenchmarkTable) -> None:
    """Reading our skip_connect as the identity groups cells of equal accuracy; reading the
    file's other free op (our avg_pool_3x3) as the identity instead does not."""
    idx = NB201Space().to_indices(nb201.codes)
    ours = _within_class_std(nb201.main, _functional_classes(idx))
    swapped = idx.copy()
    skip, pool = OPS.index("skip_connect"), OPS.index("avg_pool_3x3")
    swapped[idx == skip], swapped[idx == pool] = pool, skip
    theirs = _within_class_std(nb201.main, _functional_classes(swapped))
    assert ours < 1.0 < 3.0 < theirs


def test_nb201_file_order_constant() -> None:
    assert sorted(NB201_FILE_OPS) == sorted(OPS)
    assert NB201_FILE_OPS == (
        "avg_pool_3x3",
        "none",
        "skip_connect",
        "nor_conv_1x1",
        "nor_conv_3x3",
    )


def test_nb201_closed_form_costs(nb201: BenchmarkTable) -> None:
    space = NB201Space()
    f_ok = np.abs(space.flops(nb201.codes) / 1e6 - nb201.metrics["flops"]) <= 0.005 + 1e-9
    p_ok = np.abs(space.params(nb201.codes) / 1e6 - nb201.metrics["params"]) <= 0.0005 + 1e-9
    assert f_ok.sum() == p_ok.sum() == 15475
    np.testing.assert_array_equal(f_ok, p_ok)
