"""Checksum-first, allow-listed unpickling: malicious and tampered files are refused."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ncp_hpo.benchmarks import load_benchmark, safe_load_pickle
from ncp_hpo.benchmarks._safe_pickle import ALLOWED_GLOBALS
from ncp_hpo.exceptions import ChecksumError, DataError, UnsafePickleError


class _RunsShell:
    """Unpickling this calls ``os.system`` (it would create ``marker``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class _MakesDir:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.path),))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_os_system_pickle_is_refused_without_side_effect(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps([{"embedding": [1, 2], "top1": 1.0, "x": _RunsShell(marker)}])
    with pytest.raises(UnsafePickleError, match=r"'posix\.system'|'nt\.system'") as err:
        safe_load_pickle(payload, sha256=_sha(payload))  # checksum passes; allow-list refuses
    assert "allow-list" in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_any_protocol_is_refused(tmp_path: Path, protocol: int) -> None:
    target = tmp_path / "made-by-pickle"
    payload = pickle.dumps(_MakesDir(target), protocol=protocol)
    with pytest.raises(UnsafePickleError, match="mkdir"):
        safe_load_pickle(payload, sha256=_sha(payload))
    assert not target.exists()


def test_builtins_eval_is_refused() -> None:
    payload = b"cbuiltins\neval\n(V1+1\ntR."  # protocol 0: builtins.eval('1+1')
    with pytest.raises(UnsafePickleError, match=r"'builtins\.eval'"):
        safe_load_pickle(payload, sha256=_sha(payload))


def test_checksum_is_checked_before_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsShell(marker))
    with pytest.raises(ChecksumError):
        safe_load_pickle(payload, sha256="0" * 64)
    assert not marker.exists()


def test_tampered_file_names_file_and_digests(tmp_path: Path) -> None:
    good = pickle.dumps([{"a": 1.0}])
    path = tmp_path / "trainval.pkl"
    path.write_bytes(good[:-2] + b"\x00" + good[-1:])
    with pytest.raises(ChecksumError) as err:
        safe_load_pickle(path, sha256=_sha(good))
    msg = str(err.value)
    assert str(path) in msg and _sha(good) in msg and _sha(path.read_bytes()) in msg
    assert "\n" not in msg
    assert isinstance(err.value, ValueError)


def test_numpy_arrays_and_plain_containers_load() -> None:
    obj = [{"embedding": np.arange(30, dtype=np.float32), "Acc": 1.5, "k": (1, "s", None)}]
    payload = pickle.dumps(obj, protocol=4)
    out = safe_load_pickle(payload, sha256=_sha(payload))
    np.testing.assert_array_equal(out[0]["embedding"], obj[0]["embedding"])
    assert out[0]["embedding"].dtype == np.float32 and out[0]["k"] == (1, "s", None)


def test_allow_list_is_exactly_numpy_array_reconstruction() -> None:
    assert set(ALLOWED_GLOBALS) == {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }


def test_the_allowed_reconstruct_is_the_one_numpy_pickles_with() -> None:
    """Pins numpy's private ``_reconstruct`` (no public equivalent: pickles name it): fails
    when a numpy release renames or moves it."""
    reduced: Any = np.arange(3).__reduce__()
    fn = reduced[0]
    assert (fn.__module__, fn.__name__) in ALLOWED_GLOBALS
    assert ALLOWED_GLOBALS[(fn.__module__, fn.__name__)] is fn
    assert ALLOWED_GLOBALS[("numpy.core.multiarray", "_reconstruct")] is fn


def test_numpy_scalar_global_is_not_allowed() -> None:
    payload = pickle.dumps(np.float64(1.0))  # needs numpy's 'scalar' global
    with pytest.raises(UnsafePickleError, match="scalar"):
        safe_load_pickle(payload, sha256=_sha(payload))


def test_object_arrays_are_refused() -> None:
    payload = pickle.dumps(np.array([1, "a"], dtype=object))
    with pytest.raises(UnsafePickleError, match="object-dtype"):
        safe_load_pickle(payload, sha256=_sha(payload))


def test_no_checksum_needs_opt_in() -> None:
    payload = pickle.dumps([1, 2])
    with pytest.raises(DataError, match="allow_unverified"):
        safe_load_pickle(payload, sha256=None)
    assert safe_load_pickle(payload, sha256=None, allow_unverified=True) == [1, 2]


def test_garbage_is_a_data_error() -> None:
    payload = b"\x80\x04not a pickle"
    with pytest.raises(DataError, match="not a readable pickle"):
        safe_load_pickle(payload, sha256=_sha(payload))


def test_loader_refuses_malicious_file_in_place_of_a_setting(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "seg").mkdir()
    bad = tmp_path / "seg" / "trainval.pkl"
    bad.write_bytes(pickle.dumps([{"mIoU": 1.0, "x": _RunsShell(marker)}]))
    with pytest.raises(ChecksumError, match="checksum mismatch") as err:
        load_benchmark("seg", data_dir=tmp_path)
    assert str(bad) in str(err.value)
    assert not marker.exists()


def test_loader_refuses_tampered_upstream_file(shared_data_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "video").mkdir()
    dst = tmp_path / "video" / "trainval.pkl"
    shutil.copyfile(shared_data_dir / "video" / "trainval.pkl", dst)
    data = bytearray(dst.read_bytes())
    data[len(data) // 2] ^= 0x01
    dst.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="ec40f09230374c5cb80fa689b16e8c07"):
        load_benchmark("video", data_dir=tmp_path)
