"""``ncp-hpo data fetch | list | info``."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import pytest
from _data_helpers import copy_raw, files_under

from ncp_hpo.benchmarks import SETTINGS, _store, load_benchmark
from ncp_hpo.cli.data import register_data_commands
from ncp_hpo.exceptions import ChecksumError, DataError, DataNotFoundError, UnknownSettingError

pytestmark = pytest.mark.usefixtures("isolated_env")  # each test: empty data and cache folders


def _run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ncp-hpo")
    register_data_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.func(args))


def _row(out: str, name: str) -> str:
    (line,) = [ln for ln in out.splitlines() if ln.split(" ", 1)[0] == name]
    return line


def test_list_shows_every_setting_when_nothing_is_available(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _run("data", "list") == 0
    out = capsys.readouterr().out
    for name in [*SETTINGS, "search_list"]:
        assert "not available" in _row(out, name)
    assert "none known" in _row(out, "3ddet") and "pinned" in _row(out, "cls-10c")


def test_list_reports_origin_rows_and_checksum(
    shared_data_dir: Path,
    converted_cache: Path,
    isolated_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shutil.copytree(converted_cache / "seg", isolated_env / "seg")
    env = copy_raw(shared_data_dir, tmp_path / "env", "nas-bench-201", "video")
    bad = env / "video" / "trainval.pkl"
    bad.write_bytes(bad.read_bytes()[:-1])
    monkeypatch.setenv("NCP_HPO_DATA", str(env))
    assert _run("data", "list") == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].split() == ["SETTING", "AVAILABLE", "ROWS", "CHECKSUM"]
    seg = _row(out, "seg")
    assert "cache (" in seg and "2507" in seg and seg.endswith("verified")
    nb = _row(out, "nas-bench-201")
    assert "NCP_HPO_DATA (" in nb and "15625" in nb and nb.endswith("verified")
    assert _row(out, "video").endswith("MISMATCH")
    assert "not available" in _row(out, "cls-50-100")


def test_fetch_from_dir_then_info(
    shared_data_dir: Path,
    tmp_path: Path,
    isolated_env: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src = copy_raw(shared_data_dir, tmp_path / "src", "cls-10-1000")
    assert _run("data", "fetch", "--data-dir", str(src)) == 0
    out = capsys.readouterr().out
    assert "cls-10-1000" in out and "converted" in out and "sha256 verified" in out
    assert files_under(isolated_env) == ["cls-10-1000/meta.json", "cls-10-1000/table.npz"]
    shutil.rmtree(src)
    assert _run("data", "info", "cls-10-1000") == 0
    out = capsys.readouterr().out
    assert "rows:         2507" in out and "main metric:  top1" in out
    assert str(isolated_env / "cls-10-1000" / "table.npz") in out
    for metric in ("top1", "top5", "flops", "params"):
        assert f"  {metric} " in out
    assert _run("data", "fetch", "--data-dir", str(shared_data_dir), "cls-10-1000") == 0
    assert "up to date" in capsys.readouterr().out


def test_info_of_unavailable_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run("data", "info", "video-p") == 0
    out = capsys.readouterr().out
    assert "available:    no" in out and "f004d8a2" in out and "top1" in out


def test_user_errors_are_ncp_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownSettingError, match="known: cls-50-1000"):
        _run("data", "info", "imagenet")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        _run("data", "fetch", "--data-dir", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="--allow-unverified"):
        _run("data", "fetch", "3ddet")

    def offline(url: str, timeout: float) -> None:
        raise OSError("network unreachable")

    monkeypatch.setattr(_store, "_urlopen", offline)
    with pytest.raises(DataError, match="could not download cls-10c"):
        _run("data", "fetch", "cls-10c")


def test_top_level_cli_prints_one_line(
    shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = pytest.importorskip("ncp_hpo.cli")
    src = copy_raw(shared_data_dir, tmp_path / "src", "seg")
    raw = src / "seg" / "trainval.pkl"
    raw.write_bytes(b"\x00" + raw.read_bytes())
    assert cli.main(["data", "fetch", "--data-dir", str(src), "seg"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ncp-hpo: error: checksum mismatch for") and err.count("\n") == 1
    with pytest.raises(ChecksumError):
        load_benchmark("seg", data_dir=src)


def test_data_status_is_the_library_behind_list(
    shared_data_dir: Path, isolated_env: Path, tmp_path: Path
) -> None:
    from ncp_hpo.benchmarks import DataStatus, data_status

    env = copy_raw(shared_data_dir, tmp_path / "env", "nas-bench-201")
    nb, seg = data_status(["nas-bench-201", "seg"], data_dir=env)
    assert isinstance(nb, DataStatus) and nb.name == "nas-bench-201"
    assert nb.where.startswith("data_dir (") and nb.rows == "15625" and nb.check == "verified"
    assert (seg.where, seg.rows, seg.check) == ("not available", "-", "pinned")
    with pytest.raises(UnknownSettingError, match="segg"):
        data_status(["segg"])
