"""Resolution order, fetch into a pickle-free cache, atomic writes, clear errors."""

from __future__ import annotations

import io
import json
import re
import shutil
import urllib.error
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _data_helpers import copy_raw, files_under

from ncp_hpo.benchmarks import (
    SEARCH_LIST,
    SETTINGS,
    UPSTREAM_COMMIT,
    _store,
    cache_dir,
    fetch,
    find_setting,
    load_benchmark,
    load_search_list,
    resolve_path,
)
from ncp_hpo.exceptions import (
    ChecksumError,
    DataError,
    DataNotFoundError,
    NCPError,
    UnknownSettingError,
)


def test_registry_knows_every_setting() -> None:
    assert list(SETTINGS) == [
        "cls-50-1000",
        "cls-50-100",
        "cls-10-1000",
        "cls-10c",
        "seg",
        "seg-4x",
        "video",
        "video-p",
        "3ddet",
        "nas-bench-201",
    ]
    for name, s in SETTINGS.items():
        assert s.upstream_path == f"data/{name}/trainval.pkl"
        assert UPSTREAM_COMMIT in s.url and s.url.endswith(s.upstream_path)
        assert s.main_metric == s.metrics[0] and s.metrics[-2:] == ("flops", "params")
        assert (s.sha256 is None) == (name == "3ddet")
    assert SETTINGS["seg"].metrics == ("mIoU", "mAcc", "aAcc", "flops", "params")
    assert SETTINGS["cls-10c"].sha256 == (
        "99d8e31680794790ef6e01dc65d7ba714786b3c15cbf97ee25cf61ea2bef34d6"
    )
    assert SETTINGS["nas-bench-201"].main_metric == "Acc"
    assert SEARCH_LIST.upstream_path == "data/search_list.txt"


def test_registry_matches_local_sha256sums(shared_data_dir: Path) -> None:
    sums = {}
    for line in (shared_data_dir / "SHA256SUMS").read_text().splitlines():
        digest, path = line.split()
        sums[path.removeprefix("./")] = digest
    for name, s in SETTINGS.items():
        if s.local_name in sums:
            assert s.sha256 == sums[s.local_name], name
    assert SEARCH_LIST.sha256 == sums["search_list.txt"]


def test_unknown_setting_lists_known_ones() -> None:
    with pytest.raises(UnknownSettingError) as err:
        load_benchmark("segmentation")
    msg = str(err.value)
    assert "'segmentation'" in msg and "seg-4x" in msg and "nas-bench-201" in msg
    assert isinstance(err.value, KeyError) and isinstance(err.value, NCPError)
    with pytest.raises(UnknownSettingError):
        fetch(["seg", "nope"], source=".")


def test_missing_data_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as err:
        load_benchmark("cls-10c", data_dir=tmp_path)
    msg = str(err.value)
    assert "ncp-hpo data fetch --data-dir DIR cls-10c" in msg and "NCP_HPO_DATA" in msg
    assert str(tmp_path) in msg and "\n" not in msg
    assert isinstance(err.value, FileNotFoundError)


def test_resolution_order_arg_then_env_then_cache(
    converted_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    arg, env = tmp_path / "arg", tmp_path / "env"
    for root in (arg, env, isolated_env):
        shutil.copytree(converted_cache / "seg", root / "seg")
    monkeypatch.setenv("NCP_HPO_DATA", str(env))

    def where(data_dir: Path | None) -> tuple[str, Path]:
        loc = find_setting("seg", data_dir)
        assert loc is not None
        return loc.origin, loc.path

    assert where(arg) == ("data_dir", arg / "seg" / "table.npz")
    assert load_benchmark("seg", data_dir=arg).source == str((arg / "seg" / "table.npz").resolve())
    assert where(None) == ("NCP_HPO_DATA", env / "seg" / "table.npz")
    monkeypatch.delenv("NCP_HPO_DATA")
    assert where(None) == ("cache", isolated_env / "seg" / "table.npz")
    # a data_dir lacking the setting falls through to the next place
    assert where(tmp_path / "empty") == ("cache", isolated_env / "seg" / "table.npz")
    assert resolve_path("seg") == isolated_env / "seg" / "table.npz"


def test_cache_dir_default_and_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NCP_HPO_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NCP_HPO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir().name == "ncp-hpo"


def test_converted_table_preferred_over_pickle_in_same_dir(
    converted_cache: Path, shared_data_dir: Path, tmp_path: Path
) -> None:
    copy_raw(shared_data_dir, tmp_path, "seg")
    loc = find_setting("seg", tmp_path)
    assert loc is not None and loc.format == "pickle"
    shutil.copytree(converted_cache / "seg", tmp_path / "seg", dirs_exist_ok=True)
    loc = find_setting("seg", tmp_path)
    assert loc is not None and loc.format == "npz"


def test_upstream_clone_layout_is_found(shared_data_dir: Path, tmp_path: Path) -> None:
    copy_raw(shared_data_dir, tmp_path / "data", "video")
    table = load_benchmark("video", data_dir=tmp_path)
    assert len(table) == 2507


def test_fetch_from_dir_then_load_from_cache_without_original(
    shared_data_dir: Path, tmp_path: Path, isolated_env: Path
) -> None:
    src = copy_raw(shared_data_dir, tmp_path / "src", "seg", "nas-bench-201")
    shutil.copyfile(shared_data_dir / "search_list.txt", src / "search_list.txt")
    results = fetch(source=src)
    assert [r.name for r in results] == ["seg", "nas-bench-201", "search_list"]
    assert all(r.action == "converted" and r.verified for r in results)
    original = load_benchmark("seg", data_dir=src)
    shutil.rmtree(src)
    from ncp_hpo.benchmarks import clear_cache

    clear_cache()
    loc = find_setting("seg")
    assert loc is not None and (loc.origin, loc.format) == ("cache", "npz")
    cached = load_benchmark("seg")
    np.testing.assert_array_equal(cached.codes, original.codes)
    for k, v in original.metrics.items():
        np.testing.assert_array_equal(cached.metrics[k], v)
    assert cached.sha256 == SETTINGS["seg"].sha256
    assert len(load_search_list()) == 2511
    # the cache holds no pickle: npz readable with allow_pickle=False, JSON metadata
    assert files_under(isolated_env) == [
        "nas-bench-201/meta.json",
        "nas-bench-201/table.npz",
        "search_list.txt",
        "seg/meta.json",
        "seg/table.npz",
    ]
    meta = json.loads((isolated_env / "seg" / "meta.json").read_text())
    assert meta["source_sha256"] == SETTINGS["seg"].sha256 and meta["verified"] is True
    with np.load(isolated_env / "seg" / "table.npz", allow_pickle=False) as npz:
        assert npz["codes"].dtype == np.int64 and "metric__mIoU" in npz.files
    # second fetch is a no-op
    again = fetch("seg", source=shared_data_dir)
    assert again[0].action == "up to date"


def test_fetch_named_setting_missing_in_dir(tmp_path: Path, isolated_env: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"not found under .*cls-10c"):
        fetch(["cls-10c"], source=tmp_path)
    with pytest.raises(DataNotFoundError, match="no benchmark files under"):
        fetch(source=tmp_path)
    assert files_under(isolated_env) == []


def test_fetch_tampered_source_is_refused_and_writes_nothing(
    shared_data_dir: Path, tmp_path: Path, isolated_env: Path
) -> None:
    src = copy_raw(shared_data_dir, tmp_path / "src", "seg")
    raw = src / "seg" / "trainval.pkl"
    raw.write_bytes(raw.read_bytes() + b"\x00")
    with pytest.raises(ChecksumError, match=f"{re.escape(str(raw))}.*expected sha256 1854e1ec"):
        fetch("seg", source=src)
    assert files_under(isolated_env) == []


@pytest.mark.parametrize("fail_on", [1, 2])
def test_atomic_write_leaves_no_partial_files(
    shared_data_dir: Path,
    tmp_path: Path,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    fail_on: int,
) -> None:
    """A failure while moving the table (1) or the metadata (2) into place leaves nothing."""
    src = copy_raw(shared_data_dir, tmp_path / "src", "video")
    real_replace = _store.os.replace
    calls = {"n": 0}

    def flaky_replace(a: Any, b: Any) -> None:
        calls["n"] += 1
        if calls["n"] == fail_on:
            raise OSError("disk full")
        real_replace(a, b)

    monkeypatch.setattr(_store.os, "replace", flaky_replace)
    with pytest.raises(OSError, match="disk full"):
        fetch("video", source=src)
    assert files_under(isolated_env) == []
    assert find_setting("video") is None


def test_failure_while_writing_removes_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_fsync(fd: int) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(_store.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="I/O error"):
        _store._atomic_write(tmp_path / "out.bin", b"x" * 1000)
    assert files_under(tmp_path) == []


def test_tampered_cache_is_detected(converted_cache: Path, tmp_path: Path) -> None:
    shutil.copytree(converted_cache / "seg-4x", tmp_path / "seg-4x")
    table = tmp_path / "seg-4x" / "table.npz"
    table.write_bytes(table.read_bytes()[:-10])
    with pytest.raises(DataError, match="does not match its recorded digest"):
        load_benchmark("seg-4x", data_dir=tmp_path)


def test_cache_converted_from_other_bytes_is_refused(converted_cache: Path, tmp_path: Path) -> None:
    shutil.copytree(converted_cache / "seg-4x", tmp_path / "seg-4x")
    meta_path = tmp_path / "seg-4x" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["source_sha256"] = "f" * 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ChecksumError, match=r"converted from sha256 f{64}"):
        load_benchmark("seg-4x", data_dir=tmp_path)


class _FakeResponse(io.BytesIO):
    def __enter__(self) -> _FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def test_download_failure_is_one_clean_error(
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    def offline(url: str, timeout: float) -> Any:
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(_store, "_urlopen", offline)
    with pytest.raises(DataError) as err:
        fetch("video-p")
    msg = str(err.value)
    assert "could not download video-p" in msg and UPSTREAM_COMMIT in msg
    assert "--data-dir DIR" in msg and "\n" not in msg
    assert files_under(isolated_env) == []


def test_download_path_verifies_and_converts(
    shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    seen = []

    def serve(url: str, timeout: float) -> Any:
        seen.append(url)
        rel = url.split(f"/{UPSTREAM_COMMIT}/data/")[1]
        return _FakeResponse((shared_data_dir / rel).read_bytes())

    monkeypatch.setattr(_store, "_urlopen", serve)
    (result,) = fetch("cls-50-100")
    assert seen == [SETTINGS["cls-50-100"].url]
    assert result.action == "converted" and result.rows == 2507
    assert load_benchmark("cls-50-100").metrics["top1"].shape == (2507,)


def test_unpinned_setting_needs_opt_in_before_any_download(
    shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path, tmp_path: Path
) -> None:
    called = []
    monkeypatch.setattr(_store, "_urlopen", lambda url, timeout: called.append(url))
    with pytest.raises(DataError, match=r"3ddet has no pinned checksum.*--allow-unverified"):
        fetch("3ddet")
    assert called == []
    assert "3ddet" not in _store.default_fetch_names(None, allow_unverified=False)
    assert "3ddet" in _store.default_fetch_names(None, allow_unverified=True)

    # with the opt-in, an (imitation) 3ddet file is converted and marked unverified
    src = tmp_path / "src"
    (src / "3ddet").mkdir(parents=True)
    import pickle

    records = pickle.loads((shared_data_dir / "video" / "trainval.pkl").read_bytes())
    for r in records:
        r["moderate"], r["easy"] = r.pop("top1"), r.pop("top5")
    (src / "3ddet" / "trainval.pkl").write_bytes(pickle.dumps(records))
    with pytest.raises(DataError, match="allow_unverified"):
        load_benchmark("3ddet", data_dir=src)
    (result,) = fetch("3ddet", source=src, allow_unverified=True)
    assert result.verified is False
    table = load_benchmark("3ddet")
    assert table.main_metric == "moderate" and "easy" in table.metrics
    assert json.loads((isolated_env / "3ddet" / "meta.json").read_text())["verified"] is False


def test_search_list_is_verified(shared_data_dir: Path, tmp_path: Path) -> None:
    codes = load_search_list(shared_data_dir)
    assert len(codes) == 2511 and len(set(codes)) == 2511  # README's "2,510" is `wc -l`
    assert codes[0].count("-") == 5
    (tmp_path / "search_list.txt").write_text("64_64-1\n")
    with pytest.raises(ChecksumError):
        load_search_list(tmp_path)
