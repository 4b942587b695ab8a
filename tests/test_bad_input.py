"""Bad input everywhere it enters ncp_hpo.

* Fuzzing (hypothesis) of the code parsers and validators and of the predictor's input
  checks: every input is either accepted and then provably valid, or refused with
  :class:`~ncp_hpo.exceptions.InvalidCodeError` (one line) - never another exception.
  Each fuzz test records how many inputs it tried (printed at the end of the run).
* Data files: truncated, bit-flipped, empty and garbage benchmark files and predictor
  checkpoints are refused with the package's own errors.
* Objectives that raise or return NaN/inf, and a tracking server that fails mid-study, do
  not stop a study.
* The command line: bad arguments, unknown settings, unreachable storages and tracking
  servers give one line on stderr, exit status 2 and no traceback (in-process through
  ``ncp_hpo.cli.main`` and, for a few, through the real ``ncp-hpo`` entry point).

The regression tests at the end pin bugs this file found in the spaces and the predictor
(non-numbers, huge numbers, inf and complex values not refused with InvalidCodeError).
"""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ncp_hpo.exceptions import DataError, InvalidCodeError
from ncp_hpo.spaces import MultiResolutionSpace, NB201Space
from ncp_hpo.spaces.nb201 import OPS

MR = MultiResolutionSpace()
NB = NB201Space()
# derandomize: the same inputs on every run, so an acceptance floor below cannot flake
_FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    database=None,
    derandomize=True,
)


def fuzz(max_examples: int) -> settings:
    return settings(_FUZZ, max_examples=max_examples)


def _record(record_property: Any, what: str, n: int, accepted: int | None = None) -> None:
    extra = f" ({accepted} accepted)" if accepted is not None else ""
    record_property("ncp_summary", f"{what}: {n} inputs tried{extra}")


def _one_line(exc: BaseException) -> None:
    text = str(exc)
    assert text and "\n" not in text, repr(text)


# ---------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------
_NUMERIC_DTYPES = [
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.bool_,
]


def _shapes(d: int) -> st.SearchStrategy[tuple[int, ...]]:
    return st.sampled_from(
        [(d,), (1, d), (3, d), (0, d), (d - 1,), (d + 1,), (d, 1), (), (2, 2, d)]
    )


@st.composite
def _mutated_codes(draw: st.DrawFn, space: Any) -> np.ndarray:
    """A valid code (or batch) with a few entries replaced by arbitrary values."""
    n = draw(st.sampled_from([None, 1, 3]))
    seed = draw(st.integers(0, 2**32 - 1))
    codes = space.sample(n or 1, seed=seed).astype(np.float64)
    for _ in range(draw(st.integers(0, 3))):
        r = draw(st.integers(0, codes.shape[0] - 1))
        c = draw(st.integers(0, codes.shape[1] - 1))
        codes[r, c] = draw(
            st.one_of(
                st.sampled_from([0, 1, 2, 4, 5, 7, 8, 9, 64, 120, 127, 128, 129, 136, -8]),
                st.floats(allow_nan=True, allow_infinity=True, width=64),
                st.integers(-(2**40), 2**40),
            )
        )
    dtype = draw(st.sampled_from([np.float64, np.int64, np.float32]))
    if dtype is not np.float64 and not np.isfinite(codes).all():
        dtype = np.float64
    with np.errstate(invalid="ignore", over="ignore"):
        out = codes.astype(dtype) if dtype is np.float64 else codes.clip(-(2**40), 2**40)
        out = out.astype(dtype)
    return out[0] if n is None else out


def _arrays(d: int) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dtype=st.sampled_from(_NUMERIC_DTYPES), shape=_shapes(d))


# ---------------------------------------------------------------------------------------
# reference checks, written independently of the spaces
# ---------------------------------------------------------------------------------------
def _mr_reference_valid(x: np.ndarray) -> bool:
    if x.ndim not in (1, 2) or x.shape[-1] != 27 or x.dtype == np.bool_:
        return False
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        return False
    v = x.astype(np.float64).reshape(-1, 27)
    if not np.isfinite(v).all() or (v != np.round(v)).any():
        return False
    lo, hi, step = MR.lower, MR.upper, MR.step
    if np.issubdtype(x.dtype, np.unsignedinteger):
        v = x.reshape(-1, 27).astype(object)  # exact: no float rounding of huge uint64
        return all(
            lo[i] <= val <= hi[i] and (val - lo[i]) % step[i] == 0
            for row in v
            for i, val in enumerate(row)
        )
    return bool(((v >= lo) & (v <= hi) & (((v - lo) % step) == 0)).all())


def _nb_reference_valid(x: np.ndarray) -> bool:
    if x.ndim not in (1, 2) or x.shape[-1] != 30:
        return False
    ok_dtype = (
        x.dtype == np.bool_
        or np.issubdtype(x.dtype, np.integer)
        or np.issubdtype(x.dtype, np.floating)
    )
    if not ok_dtype:
        return False
    if np.issubdtype(x.dtype, np.unsignedinteger) and (x > 1).any():
        return False
    v = x.astype(np.float64).reshape(-1, 6, 5)
    if not ((v == 0) | (v == 1)).all():
        return False
    return bool((v.sum(-1) == 1).all())


# ---------------------------------------------------------------------------------------
# fuzz: MultiResolutionSpace
# ---------------------------------------------------------------------------------------
_BIG_INT = st.integers(-(2**70), 2**70)  # past int64 too


@st.composite
def _mr_strings(draw: st.DrawFn) -> str:
    """Strings shaped like the upstream format, mostly almost right."""
    if draw(st.booleans()):
        code = MR.sample(1, seed=draw(st.integers(0, 2**32 - 1)))[0]
        text = str(MR.encode(code))
        parts = text.split("-")
        k = draw(st.integers(0, len(parts) - 1))
        op = draw(st.sampled_from(["keep", "drop", "dup", "num", "sep", "ws"]))
        if op == "drop":
            parts.pop(k)
        elif op == "dup":
            parts.insert(k, parts[k])
        elif op == "num":
            nums = parts[k].split("_")
            nums[draw(st.integers(0, len(nums) - 1))] = str(
                draw(st.one_of(st.integers(-300, 300), _BIG_INT))
            )
            parts[k] = "_".join(nums)
        elif op == "sep":
            parts[k] = parts[k].replace("_", draw(st.sampled_from(["", "__", ",", " ", "-"])), 1)
        text = "-".join(parts)
        if op == "ws":
            text = draw(st.sampled_from([" ", "\t", "\n", ""])) + text + " "
        return text
    groups = draw(
        st.lists(st.lists(st.integers(0, 200), min_size=0, max_size=10), min_size=0, max_size=8)
    )
    return "-".join("_".join(map(str, g)) for g in groups)


def test_fuzz_multires_decode(record_property: Any) -> None:
    tried, accepted = 0, 0

    @fuzz(1000)
    @given(st.one_of(_mr_strings(), st.text(max_size=120)))
    def prop(text: str) -> None:
        nonlocal tried, accepted
        tried += 1
        try:
            code = MR.decode(text)
        except InvalidCodeError as exc:
            _one_line(exc)
            return
        accepted += 1
        assert code.shape == (27,) and code.dtype == np.int64
        MR.validate(code)
        assert np.array_equal(MR.decode(str(MR.encode(code))), code)

    prop()
    _record(record_property, "MultiResolutionSpace.decode", tried, accepted)
    assert accepted > 50  # the structured strategy reaches valid strings


def test_fuzz_multires_encode_decode_round_trip(record_property: Any) -> None:
    tried = 0

    @fuzz(300)
    @given(st.integers(0, 2**32 - 1))
    def prop(seed: int) -> None:
        nonlocal tried
        tried += 1
        code = MR.sample(1, seed=seed)[0]
        assert np.array_equal(MR.decode(str(MR.encode(code))), code)
        assert np.array_equal(MR.from_params(MR.to_params(code)), code)
        assert np.array_equal(MR.round(code.astype(np.float64) + 0.49 * MR.step * 0.5), code)

    prop()
    _record(record_property, "MultiResolutionSpace encode/decode/params round trip", tried)


def test_fuzz_multires_validate(record_property: Any) -> None:
    tried, accepted = 0, 0

    @fuzz(1000)
    @given(st.one_of(_mutated_codes(MR), _arrays(27)))
    def prop(x: np.ndarray) -> None:
        nonlocal tried, accepted
        tried += 1
        expected = _mr_reference_valid(x)
        try:
            with np.errstate(all="ignore"):
                out = MR.validate(x)
        except InvalidCodeError as exc:
            _one_line(exc)
            assert not expected, f"valid input refused: {x!r}: {exc}"
            return
        assert expected, f"invalid input accepted: {x!r}"
        accepted += 1
        assert out.shape == x.shape and out.dtype == np.int64
        assert np.array_equal(out, x.astype(np.float64))

    prop()
    _record(record_property, "MultiResolutionSpace.validate", tried, accepted)
    assert accepted > 50  # the mutated-code strategy reaches valid inputs (about 1 in 10)


def test_fuzz_multires_round(record_property: Any) -> None:
    tried = 0
    lo, hi, step = MR.lower, MR.upper, MR.step

    @fuzz(500)
    @given(
        hnp.arrays(
            np.float64,
            st.sampled_from([(27,), (2, 27)]),
            elements=st.one_of(
                st.floats(-1e6, 1e6),
                st.floats(allow_nan=True, allow_infinity=True),
            ),
        )
    )
    def prop(x: np.ndarray) -> None:
        nonlocal tried
        tried += 1
        try:
            out = MR.round(x)
        except InvalidCodeError as exc:
            _one_line(exc)
            assert np.isnan(x).any()
            return
        assert not np.isnan(x).any()
        assert out.shape == x.shape
        MR.validate(out)
        assert np.array_equal(MR.round(out), out)  # idempotent
        clipped = np.clip(x, lo, hi)
        assert (np.abs(out - clipped) <= step / 2 + 1e-9).all()  # the nearest grid point

    prop()
    _record(record_property, "MultiResolutionSpace.round", tried)


# ---------------------------------------------------------------------------------------
# fuzz: NB201Space
# ---------------------------------------------------------------------------------------
@st.composite
def _nb_strings(draw: st.DrawFn) -> str:
    if draw(st.booleans()):  # a valid cell string with at most one edit
        text = str(NB.encode(NB.sample(1, seed=draw(st.integers(0, 2**32 - 1)))[0]))
        k = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["keep", "keep", "delete", "insert", "swap_op", "ws"]))
        if edit == "delete":
            text = text[:k] + text[k + 1 :]
        elif edit == "insert":
            text = text[:k] + draw(st.sampled_from(list("|+~0123_ xN"))) + text[k:]
        elif edit == "swap_op":
            text = text.replace(draw(st.sampled_from(OPS)), draw(st.sampled_from(["conv", ""])), 1)
        elif edit == "ws":
            text = draw(st.sampled_from([" ", "\n", "\t"])) + text + " "
        return text
    ops = st.one_of(
        st.sampled_from(OPS), st.sampled_from(["conv", "None", "skip", "", " none", "nor_conv"])
    )
    n_groups = draw(st.sampled_from([3, 3, 3, 2, 4]))
    groups = []
    for node in range(1, n_groups + 1):
        n_in = draw(st.sampled_from([node, node, node, node - 1, node + 1]))
        toks = []
        for src in range(max(n_in, 0)):
            s = draw(st.sampled_from([str(src), str(src), str(src + 1), "", "x"]))
            sep = draw(st.sampled_from(["~", "~", "~", "-", ""]))
            toks.append(f"{draw(ops)}{sep}{s}")
        groups.append("|" + "|".join(toks) + "|")
    return draw(st.sampled_from(["+", "+", "+", "|+|", "++"])).join(groups)


def test_fuzz_nb201_decode(record_property: Any) -> None:
    tried, accepted = 0, 0

    @fuzz(1000)
    @given(st.one_of(_nb_strings(), st.text(max_size=120)))
    def prop(text: str) -> None:
        nonlocal tried, accepted
        tried += 1
        try:
            code = NB.decode(text)
        except InvalidCodeError as exc:
            _one_line(exc)
            return
        accepted += 1
        NB.validate(code)
        assert NB.encode(code) == text.strip()  # the format is strict: canonical only

    prop()
    _record(record_property, "NB201Space.decode", tried, accepted)
    assert accepted > 50


def test_fuzz_nb201_validate(record_property: Any) -> None:
    tried, accepted = 0, 0

    @fuzz(1000)
    @given(st.one_of(_mutated_codes(NB), _arrays(30)))
    def prop(x: np.ndarray) -> None:
        nonlocal tried, accepted
        tried += 1
        expected = _nb_reference_valid(x)
        try:
            out = NB.validate(x)
        except InvalidCodeError as exc:
            _one_line(exc)
            assert not expected, f"valid input refused: {x!r}: {exc}"
            return
        assert expected, f"invalid input accepted: {x!r}"
        accepted += 1
        assert out.shape == x.shape and out.dtype == np.int64
        NB.encode(out)

    prop()
    _record(record_property, "NB201Space.validate", tried, accepted)
    assert accepted > 100


def test_fuzz_nb201_round(record_property: Any) -> None:
    tried = 0

    @fuzz(300)
    @given(
        hnp.arrays(
            np.float64,
            st.sampled_from([(30,), (3, 30)]),
            elements=st.floats(allow_nan=True, allow_infinity=True),
        )
    )
    def prop(x: np.ndarray) -> None:
        nonlocal tried
        tried += 1
        try:
            out = NB.round(x)
        except InvalidCodeError as exc:
            _one_line(exc)
            assert np.isnan(x).any()
            return
        NB.validate(out)
        idx = x.reshape(-1, 6, 5).argmax(-1)
        assert np.array_equal(NB.to_indices(out).reshape(-1, 6), idx)

    prop()
    _record(record_property, "NB201Space.round", tried)


# ---------------------------------------------------------------------------------------
# fuzz: NeuralPredictor.predict input checking
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def predictor() -> Any:
    from ncp_hpo.predictor import NeuralPredictor

    codes = MR.sample(64, seed=0)
    y = {"acc": codes[:, :4].sum(1) / 100.0, "flops": MR.flops(codes)}
    return NeuralPredictor(epochs=5, seed=0, n_members=2).fit(codes, y)


_PREDICT_DTYPES = [np.int8, np.int64, np.uint8, np.float16, np.float32, np.float64]


def test_fuzz_predictor_predict(predictor: Any, record_property: Any) -> None:
    tried, accepted = 0, 0

    @fuzz(300)
    @given(
        st.one_of(
            hnp.arrays(st.sampled_from(_PREDICT_DTYPES), _shapes(27), elements=st.integers(0, 127)),
            hnp.arrays(np.bool_, _shapes(27)),
            hnp.arrays(np.float64, _shapes(27), elements=st.floats(-1e6, 1e6)),
            hnp.arrays(
                st.sampled_from([np.float64, np.complex128]),
                st.sampled_from([(27,), (2, 27)]),
                elements=st.sampled_from([np.nan, np.inf, -np.inf, 1e300, 64.0]),
            ),
            st.lists(st.one_of(st.integers(0, 9), st.none(), st.text(max_size=2)), max_size=30),
        )
    )
    def prop(x: Any) -> None:
        nonlocal tried, accepted
        tried += 1
        arr = np.asarray(x, dtype=object)
        try:
            mean, std = predictor.predict(x, return_std=True)
        except InvalidCodeError as exc:
            _one_line(exc)
            return
        accepted += 1
        shape = arr.shape
        assert len(shape) in (1, 2) and shape[-1] == 27
        assert mean.shape == (*shape[:-1], 2) and std.shape == mean.shape
        assert np.isfinite(mean).all() and (std >= 0).all()

    prop()
    _record(record_property, "NeuralPredictor.predict", tried, accepted)
    assert accepted > 50


# ---------------------------------------------------------------------------------------
# data files: truncated / flipped / empty / garbage
# ---------------------------------------------------------------------------------------
@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from ncp_hpo.benchmarks import clear_cache

    cache = tmp_path / "cache"
    monkeypatch.setenv("NCP_HPO_CACHE", str(cache))
    monkeypatch.delenv("NCP_HPO_DATA", raising=False)
    clear_cache()
    yield cache
    clear_cache()


def test_fuzz_damaged_benchmark_file_is_refused(
    shared_data_dir: Path, tmp_path: Path, isolated_cache: Path, record_property: Any
) -> None:
    """Truncations, bit flips, appended bytes of the seg pickle: always a DataError."""
    from ncp_hpo.benchmarks import clear_cache, load_benchmark

    good = (shared_data_dir / "seg" / "trainval.pkl").read_bytes()
    target = tmp_path / "data" / "seg" / "trainval.pkl"
    target.parent.mkdir(parents=True)
    tried = 0

    @fuzz(60)
    @given(
        st.one_of(
            st.integers(0, len(good) - 1).map(lambda k: good[:k]),
            st.tuples(st.integers(0, len(good) - 1), st.integers(1, 255)).map(
                lambda t: good[: t[0]] + bytes([good[t[0]] ^ t[1]]) + good[t[0] + 1 :]
            ),
            st.binary(min_size=1, max_size=64).map(lambda b: good + b),
            st.binary(max_size=256),
        )
    )
    def prop(data: bytes) -> None:
        nonlocal tried
        tried += 1
        target.write_bytes(data)
        clear_cache()
        with pytest.raises(DataError) as info:
            load_benchmark("seg", data_dir=target.parent.parent)
        _one_line(info.value)

    prop()
    assert not any(isolated_cache.rglob("*")) if isolated_cache.exists() else True
    _record(record_property, "damaged benchmark files", tried)


def test_fuzz_damaged_predictor_checkpoint_is_refused(
    predictor: Any, tmp_path: Path, record_property: Any
) -> None:
    from ncp_hpo.predictor import CheckpointError, NeuralPredictor

    path = predictor.save(tmp_path / "p.safetensors")
    good = path.read_bytes()
    bad = tmp_path / "bad.safetensors"
    tried = 0

    @fuzz(150)
    @given(
        st.one_of(
            st.integers(0, len(good) - 1).map(lambda k: good[:k]),
            st.tuples(st.integers(0, len(good) - 1), st.integers(1, 255)).map(
                lambda t: good[: t[0]] + bytes([good[t[0]] ^ t[1]]) + good[t[0] + 1 :]
            ),
            st.binary(max_size=512),
        )
    )
    def prop(data: bytes) -> None:
        nonlocal tried
        tried += 1
        bad.write_bytes(data)
        try:
            p = NeuralPredictor.load(bad)
        except CheckpointError as exc:
            _one_line(exc)
            return
        # a flip in a float's low bits can leave a loadable, finite checkpoint: it must work
        out = p.predict(MR.sample(2, seed=0))
        assert np.isfinite(out).all()

    prop()
    _record(record_property, "damaged predictor checkpoints", tried)


# ---------------------------------------------------------------------------------------
# a running study survives raising, NaN/inf objectives and a failing tracking server
# ---------------------------------------------------------------------------------------
def test_ncp_study_survives_raising_and_non_finite_objectives(shared_data_dir: Path) -> None:
    from ncp_hpo.benchmarks import load_benchmark
    from ncp_hpo.samplers import NCPSampler

    table = load_benchmark("nas-bench-201", data_dir=shared_data_dir)
    space = table.space
    sampler = NCPSampler(
        space=space, n_startup_trials=4, iterations=10, predictor_params={"epochs": 30}, seed=0
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    bad = {5: float("nan"), 6: float("inf"), 8: -float("inf"), 9: "raise", 11: None}

    def objective(trial: optuna.Trial) -> Any:
        acc = float(table.query(space.suggest(trial))["Acc"])
        b = bad.get(trial.number, acc)
        if b == "raise":
            raise ValueError("training diverged")
        return b

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study.optimize(objective, n_trials=16, catch=(ValueError,))
    states = [t.state.name for t in study.trials]
    # Optuna fails NaN, None and raising trials; it accepts +-inf, which NCP then ignores
    assert [i for i, s in enumerate(states) if s == "FAIL"] == [5, 9, 11]
    assert states.count("COMPLETE") == 13
    assert sampler.last_proposal_info["trial"] == 15  # NCP kept proposing after the failures


class _BrokenMLflow(http.server.BaseHTTPRequestHandler):
    """Answers ``/health`` (so the server looks alive) and fails every API call."""

    def do_GET(self) -> None:
        self._answer(200 if self.path.startswith("/health") else 500)

    def do_POST(self) -> None:
        self._answer(500)

    def _answer(self, code: int) -> None:
        body = b"OK" if code == 200 else b'{"error_code": "INTERNAL_ERROR"}'
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_failing_tracking_server_never_costs_a_trial(
    shared_data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ncp_hpo.runtime import Worker, benchmark_objective
    from ncp_hpo.runtime._storage import open_storage
    from ncp_hpo.samplers import make_sampler
    from ncp_hpo.tracking import MLflowTracker, TrackingWarning

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BrokenMLflow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        tracker = MLflowTracker(
            f"http://127.0.0.1:{server.server_address[1]}", log_model=False, log_architecture=False
        )
        spec = benchmark_objective("nas-bench-201", data_dir=str(shared_data_dir), tracker=tracker)
        worker = Worker(
            study_name="tracked",
            storage=open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=1),
            spec=spec,
            sampler=make_sampler("random", space=spec.space, seed=0),
            budget=3,
        )
        with pytest.warns(TrackingWarning, match="unavailable"):
            summary = worker.run()
    finally:
        server.shutdown()
    assert summary.complete == 3 and summary.failed == 0 and summary.study_complete == 3


# ---------------------------------------------------------------------------------------
# the command line: one line on stderr, exit status 2, no traceback
# ---------------------------------------------------------------------------------------
from _cli import run_cli as _cli  # noqa: E402


def _assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("ncp-hpo"), err
    for n in needles:
        assert n.lower() in err.lower(), (n, err)


def test_every_command_refuses_an_unknown_option(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from ncp_hpo.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    commands = sorted(sub.choices)
    assert "worker" in commands and "data" in commands
    for cmd in commands:
        code, _, err = _cli([cmd, "--no-such-option"], capsys)
        _assert_one_line_error(code, err)  # names the option, or a missing required one
        assert "--no-such-option" in err or "required" in err, err
    code, _, err = _cli(["no-such-command"], capsys)
    _assert_one_line_error(code, err, "no-such-command")


W = ["worker", "--study-name", "s", "--no-mlflow"]
NB201 = ["--benchmark", "nas-bench-201"]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["worker"], ["--study-name"]),
        ([*W, "--storage", "x"], ["--benchmark", "--task"]),
        ([*W, "--storage", "x", *NB201, "--task", "cls"], ["not allowed"]),
        ([*W, "--storage", "x", *NB201, "--trials", "0"], ["--trials", ">= 1"]),
        ([*W, "--storage", "x", *NB201, "--trials", "many"], ["--trials", "not an integer"]),
        ([*W, "--storage", "x", *NB201, "--heartbeat", "-1"], ["--heartbeat"]),
        ([*W, "--storage", "x", *NB201, "--poll", "nan"], ["--poll"]),
        ([*W, "--storage", "x", *NB201, "--sampler", "smac"], ["--sampler", "smac"]),
        ([*W, "--storage", "x", *NB201, "--objective", "speed"], ["--objective"]),
        ([*W, "--storage", "x", *NB201, "--sampler-param", "iterations"], ["NAME=VALUE"]),
        ([*W, "--storage", "x", *NB201, "--flops-weight", "-1"], ["--flops-weight", ">= 0"]),
        ([*W, "--storage", "x", "--task", "detection"], ["--task"]),
        (["data", "info"], ["setting"]),
    ],
)
def test_bad_arguments_are_one_line(
    args: list[str], needles: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(args, capsys)
    _assert_one_line_error(code, err, *needles)


@pytest.mark.parametrize(
    ("storage", "needles"),
    [
        ("", ["storage"]),
        ("not a url", ["malformed storage URL"]),
        ("nosuchdb://host/db", ["no dialect"]),
        ("sqlite:///:memory:", ["in memory"]),
        ("sqlite:////no/such/folder/s.db", ["does not exist"]),
        ("journal:", ["no file path"]),
        ("journal:/no/such/folder/s.log", ["does not exist"]),
        ("mysql://u@127.0.0.1:9/db", ["driver", "pymysql"]),
        ("postgresql+psycopg://u:secret@127.0.0.1:9/db", ["cannot use storage", "refused"]),
    ],
)
def test_bad_or_unreachable_storage_is_one_line(
    storage: str, needles: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    if storage.startswith("postgresql"):
        pytest.importorskip("psycopg")
    if storage.startswith("mysql"):
        for mod in ("MySQLdb", "pymysql"):
            if _importable(mod):
                pytest.skip(f"{mod} is installed")
    monkeypatch.delenv("NCP_HPO_STORAGE", raising=False)
    code, _, err = _cli([*W, "--storage", storage, *NB201], capsys)
    _assert_one_line_error(code, err, *needles)
    assert "secret" not in err  # passwords are masked


def _importable(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


def test_journal_that_is_not_a_journal_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "s.log"
    log.write_text("this is not\nan optuna journal\n")
    code, _, err = _cli([*W, "--storage", f"journal:{log}", *NB201], capsys)
    _assert_one_line_error(code, err, "not a readable Optuna journal")
    code, _, err = _cli([*W, "--storage", f"journal:{tmp_path}", *NB201], capsys)
    _assert_one_line_error(code, err, "is a directory")


def test_bad_benchmark_and_sampler_settings_are_one_line(
    sqlite_url: str,
    tmp_path: Path,
    shared_data_dir: Path,
    isolated_cache: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = [*W, "--storage", sqlite_url]
    data = ["--data-dir", str(shared_data_dir)]
    cases: list[tuple[list[str], list[str]]] = [
        (["--benchmark", "nas-bench-999"], ["unknown benchmark setting", "nas-bench-201"]),
        ([*NB201, "--data-dir", str(tmp_path / "empty")], ["nas-bench-201", "fetch"]),
        (["--benchmark", "seg", "--mode", "exact", *data], ["complete table"]),
        ([*NB201, *data, "--sampler-param", "bogus=1"], ["unknown ncp sampler parameter", "bogus"]),
        ([*NB201, *data, "--sampler-param", "iterations=0"], ["iterations"]),
        ([*NB201, *data, "--sampler", "random", "--startup-trials", "3"], ["--startup-trials"]),
        ([*NB201, *data, "--flops-weight", "0.5"], ["--objective metric+flops"]),
        ([*NB201, *data, "--heartbeat", "2", "--grace", "1"], ["--grace"]),
        ([*NB201, *data, "--heartbeat", "0", "--grace", "5"], ["--grace"]),
        (["--task", "cls", "--mode", "exact"], ["--benchmark only"]),
    ]
    for args, needles in cases:
        code, _, err = _cli([*base, *args], capsys)
        _assert_one_line_error(code, err, *needles)
    assert not any(isolated_cache.rglob("*")) if isolated_cache.exists() else True


def test_gp_under_a_compute_budget_is_refused_in_one_line_before_any_study(
    sqlite_url: str, tmp_path: Path, shared_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """GPSampler fits COMPLETE trials only, so a budget's refusals would teach it nothing
    (the study used to stop after 500 refusals in a row): every command refuses it up
    front, names why and what to use, and leaves no study behind."""
    why = ["gp sampler cannot search under a compute budget", "COMPLETE trials only", "tpe"]
    out = tmp_path / "cmp"
    gp_cls = ["--task", "cls", "--sampler", "gp", "--trials", "3", "--no-mlflow"]
    cases: list[tuple[list[str], list[str]]] = [
        (["study", *gp_cls, "--device", "cpu", "--storage", sqlite_url],
         [*why, "default budget of 0.004 GFLOPs", "--max-gflops none"]),
        (["study", *gp_cls, "--max-gflops", "none", "--max-params", "1", "--storage", sqlite_url],
         ["no --max-params"]),
        ([*W, "--storage", sqlite_url, "--task", "cls", "--sampler", "gp", "--max-gflops",
          "0.004"], why),
        (["compare", *NB201, "--data-dir", str(shared_data_dir), "--samplers", "ncp,gp",
          "--max-flops", "p25", "--out", str(out), "--no-mlflow"], [*why, "drop --max-flops"]),
    ]  # fmt: skip
    for args, needles in cases:
        code, _, err = _cli(args, capsys)
        _assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "study.db").exists() and not out.exists()


def test_tampered_data_file_is_one_line(
    shared_data_dir: Path, tmp_path: Path, isolated_cache: Path, capsys: Any
) -> None:
    src = (shared_data_dir / "nas-bench-201" / "trainval.pkl").read_bytes()
    for name, data in [
        ("empty", b""),
        ("truncated", src[: len(src) // 2]),
        ("tampered", src[:100] + bytes([src[100] ^ 1]) + src[101:]),
    ]:
        d = tmp_path / name / "nas-bench-201"
        d.mkdir(parents=True)
        (d / "trainval.pkl").write_bytes(data)
        args = [
            *W,
            "--storage",
            f"journal:{tmp_path / 's.log'}",
            *NB201,
            "--data-dir",
            str(d.parent),
        ]
        code, _, err = _cli(args, capsys)
        _assert_one_line_error(code, err, "sha256")
        code, _, err = _cli(["data", "info", "nas-bench-201", "--data-dir", str(d.parent)], capsys)
        _assert_one_line_error(code, err, "sha256")
        code, _, err = _cli(["data", "fetch", "nas-bench-201", "--data-dir", str(d.parent)], capsys)
        _assert_one_line_error(code, err, "sha256")
    # nothing half-written in the cache (fetch verifies before it writes, writes atomically)
    assert [p for p in isolated_cache.rglob("*") if p.is_file()] == []


def test_study_of_another_objective_is_refused(
    sqlite_url: str, shared_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = ["--data-dir", str(shared_data_dir)]
    optuna.create_study(study_name="min", storage=sqlite_url, direction="minimize")
    code, _, err = _cli(
        [*W[:2], "min", "--no-mlflow", "--storage", sqlite_url, *NB201, *data], capsys
    )
    _assert_one_line_error(code, err, "directions", "minimize")
    run = [*W, "--storage", sqlite_url, *NB201, *data, "--sampler", "random", "--quiet"]
    code, out, err = _cli([*run, "--trials", "2"], capsys)
    assert code == 0 and "2/2 complete" in out, err
    scalarised = ["--objective", "metric+flops", "--flops-weight", "0.5"]
    code, _, err = _cli([*run, *scalarised, "--trials", "3"], capsys)
    _assert_one_line_error(
        code, err, "was created for benchmark 'nas-bench-201'", "flops_weight=0.5"
    )


def test_objective_failing_every_trial_stops_the_worker_with_one_line(
    sqlite_url: str,
    shared_data_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NCP_HPO_FAULTS", "raise@*")
    args = [*W, "--storage", sqlite_url, *NB201, "--data-dir", str(shared_data_dir)]
    code, out, err = _cli([*args, "--sampler", "random", "--max-failures", "3"], capsys)
    _assert_one_line_error(code, err, "3 failed trials in a row", "InjectedFault")
    assert out.count(" FAIL: ") == 3
    study = optuna.load_study(study_name="s", storage=sqlite_url)
    reasons = [t.user_attrs["fail_reason"] for t in study.trials]
    assert all(r.startswith("objective error: InjectedFault") for r in reasons), reasons


def test_real_entry_point_prints_one_line(tmp_path: Path, shared_data_dir: Path) -> None:
    """The ``ncp-hpo`` console script itself (not ``main``): a few errors, in parallel."""
    exe = shutil.which("ncp-hpo")
    cmd = [exe] if exe else [sys.executable, "-m", "ncp_hpo.cli"]
    data = ["--data-dir", str(shared_data_dir)]
    cases = {
        "argparse": ([*W, "--storage", "x", *NB201, "--trials", "-5"], "--trials"),
        "storage": (
            [*W, "--storage", "postgresql+psycopg://u:pw@127.0.0.1:9/db", *NB201, *data],
            # refused with the driver; without it, the error names the 'postgres' extra
            "cannot use storage" if _importable("psycopg") else "ncp-hpo[postgres]",
        ),
        "setting": ([*W, "--storage", f"journal:{tmp_path / 'j.log'}", "--benchmark", "x"], "x"),
    }
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = {
        k: subprocess.Popen(
            [*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for k, (args, _) in cases.items()
    }
    for k, p in procs.items():
        _, err = p.communicate(timeout=300)
        _assert_one_line_error(p.returncode, err, cases[k][1])


# ---------------------------------------------------------------------------------------
# regressions: bugs this file found in other modules, fixed in 371b362
# ---------------------------------------------------------------------------------------
def test_decode_of_a_huge_number_is_an_invalid_code_error() -> None:
    text = "64_64-2_1_2_64-2_2_2_2_64_64-2_3_2_2_2_64_64_64-2_4_2_2_2_2_64_64_64_64-" + "9" * 20
    with pytest.raises(InvalidCodeError, match="far outside"):
        MR.decode(text)


@pytest.mark.parametrize("space", [MR, NB], ids=["multires", "nb201"])
@pytest.mark.parametrize("junk", ["a", object()], ids=["str", "object"])
def test_round_of_non_numbers_is_an_invalid_code_error(space: Any, junk: Any) -> None:
    with pytest.raises(InvalidCodeError, match="real numbers"):
        space.round([junk] * space.dim)


@pytest.mark.parametrize("value", [np.inf, 1e300], ids=["inf", "overflow"])
def test_predict_refuses_infinite_codes(predictor: Any, value: float) -> None:
    with pytest.raises(InvalidCodeError, match="infinite"):
        predictor.predict(np.full(27, value))


def test_predict_refuses_complex_codes(predictor: Any) -> None:
    with pytest.raises(InvalidCodeError, match="real numbers"):
        predictor.predict(np.full(27, 64 + 5j))


def test_validate_names_the_value_of_an_overflowing_float() -> None:
    """Refused, as it should be; the message shows the wrapped int64 (reported, cosmetic)."""
    with np.errstate(invalid="ignore"), pytest.raises(InvalidCodeError) as info:
        MR.validate(np.full(27, 1e30))
    _one_line(info.value)


@pytest.mark.parametrize("command", ["compare", "search"])
def test_an_unwritable_output_folder_is_one_line(
    command: str, tmp_path: Path, shared_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    data = ["--data-dir", str(shared_data_dir)]
    if command == "compare":
        argv = ["compare", "--benchmark", "nas-bench-201", "--samplers", "random", "--trials",
                "2", "--seeds", "1", "--no-mlflow", "--quiet", *data]  # fmt: skip
    else:
        argv = ["search", "--setting", "nas-bench-201", "--iters", "2", "--no-progress", *data]
    code, _, err = _cli([*argv, "--out", str(blocker / "out")], capsys)
    _assert_one_line_error(code, err, "cannot use", "a-file", "Not a directory")


def test_worker_with_an_unreachable_mlflow_warns_once_and_runs(
    tmp_path: Path, shared_data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like ``study``: an unreachable tracking server is one warning, never a lost trial."""
    storage = f"sqlite:///{tmp_path / 's.db'}"
    # W[:3]: MLflow on
    argv = [*W[:3], "--storage", storage, *NB201, "--data-dir", str(shared_data_dir),
            "--sampler", "random", "--trials", "3", "--quiet",
            "--mlflow-uri", "http://u:secret@127.0.0.1:9"]  # fmt: skip
    code, _, err = _cli(argv, capsys)
    assert code == 0, err
    warns = [ln for ln in err.splitlines() if ln.startswith("warning: MLflow")]
    assert len(warns) == 1 and "unreachable" in warns[0] and "Traceback" not in err
    assert "secret" not in err
    study = optuna.load_study(study_name="s", storage=storage)
    assert len([t for t in study.trials if t.state.name == "COMPLETE"]) == 3


# -- issue 26 (7): bad input that used to end in a traceback or a flood of warnings --------
@pytest.mark.parametrize(
    ("option", "value", "needles"),
    [
        ("--trials", "0", ["--trials must be an integer >= 1, got 0"]),
        ("--seeds", "1000000000", ["--seeds must be an integer from 1 to 10,000", "1000000000"]),
    ],
)
def test_compare_refuses_impossible_counts_in_one_line(
    option: str, value: str, needles: list[str], tmp_path: Path, capsys: Any
) -> None:
    """``--trials 0`` was a KeyError traceback, ``--seeds 1000000000`` a MemoryError."""
    argv = ["compare", "--benchmark", "nas-bench-201", "--out", str(tmp_path / "out"),
            "--no-mlflow", option, value]  # fmt: skip
    code, _, err = _cli(argv, capsys)
    _assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "out").exists()  # refused before anything ran
    paper = ["compare", "--benchmark", "seg", "--protocol", "paper", "--seeds", "1000000000"]
    code, _, err = _cli([*paper, "--out", str(tmp_path / "paper"), "--no-mlflow"], capsys)
    _assert_one_line_error(code, err, "--seeds must be an integer from 1 to 10,000")


_READ_ONLY_MID_RUN = """
import subprocess, sys
from ncp_hpo.cli import main
from ncp_hpo.experiments.compare import _pool
run_task, calls = _pool.run_task, []
def run_task_then_lock(task, queue=None):  # the folder turns read-only after one study
    if calls:
        subprocess.run(["chmod", "-R", "a-w", sys.argv[1]], check=True)
    calls.append(task.name)
    return run_task(task, queue)
_pool.run_task = run_task_then_lock
sys.exit(main(sys.argv[2:]))
"""


def test_output_folder_made_read_only_mid_run_names_the_cause(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    """The error named ``compare.lock`` (its removal failed while the real error was in
    flight); it must name the folder and the cause, and lose no finished trial."""
    prefix: list[str] = []
    if os.geteuid() == 0:  # root writes anywhere: drop the capability that allows it
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: permissions cannot be tested")
        prefix = ["setpriv", "--bounding-set=-dac_override"]
    out = tmp_path / "out"
    argv = ["compare", "--benchmark", "nas-bench-201", "--samplers", "random", "--trials",
            "4", "--seeds", "2", "--jobs", "1", "--out", str(out), "--data-dir",
            str(shared_data_dir), "--no-mlflow", "--quiet"]  # fmt: skip
    run = subprocess.run(
        [*prefix, sys.executable, "-c", _READ_ONLY_MID_RUN, str(out), *argv],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    subprocess.run(["chmod", "-R", "u+w", str(out)], check=True)
    _assert_one_line_error(run.returncode, run.stderr, str(out), "permission denied", "kept in")
    assert "compare.lock" not in run.stderr
    study = optuna.load_study(
        study_name="nas-bench-201-random-seed0",
        storage=f"sqlite:///{out / 'studies' / 'nas-bench-201-random-seed0.db'}",
    )
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4  # nothing lost
    from ncp_hpo.cli import main

    assert main(argv) == 0 and (out / "summary.csv").is_file()  # writable again: it finishes


def test_a_prior_that_is_a_path_is_a_type_error_naming_the_fix() -> None:
    from ncp_hpo import NCPSampler
    from ncp_hpo.samplers import NetAdaptSampler

    with pytest.raises(TypeError, match=r"NeuralPredictor\.load\('file\.pt'\)") as info:
        NCPSampler(prior="file.pt")  # type: ignore[arg-type]
    _one_line(info.value)
    with pytest.raises(TypeError, match="prior must be a fitted NeuralPredictor or None, got int"):
        NetAdaptSampler(prior=3)  # type: ignore[arg-type]


class _TwoCodes(NB201Space):
    """A space whose sampler can reach two codes only (the rest never comes up)."""

    def sample(self, n: int, seed: Any = None) -> np.ndarray:
        two = self.from_indices(np.array([[0] * 6, [1] * 6]))
        return two[np.random.default_rng(seed).integers(2, size=n)]


def test_an_exhausted_space_warns_once_per_study() -> None:
    """It warned 8 times for every repeated trial."""
    from ncp_hpo.exceptions import NCPWarning
    from ncp_hpo.samplers import SpaceRandomSampler

    space = _TwoCodes()
    sampler = SpaceRandomSampler(space=space, seed=0)
    for name in ("a", "b"):
        study = optuna.create_study(study_name=name, sampler=sampler)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            study.optimize(lambda t: float(space.suggest(t).sum()), n_trials=6)
        mine = [w for w in caught if issubclass(w.category, NCPWarning)]
        assert len(caught) == len(mine) == 1, [str(w.message) for w in caught]
        assert f"study {name!r} was already evaluated" in str(mine[0].message)
        assert len({str(t.params) for t in study.trials}) == 2  # it did repeat


@pytest.mark.parametrize("name", ["ax", "ax-default"])
def test_an_ax_strategy_is_not_an_optuna_sampler(name: str) -> None:
    from ncp_hpo.exceptions import SamplerConfigError
    from ncp_hpo.samplers import make_sampler

    with pytest.raises(SamplerConfigError, match=f"'{name}' is an Ax generation strategy"):
        make_sampler(name, space=None)
