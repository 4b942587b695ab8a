"""Zero-cost proxies (issue 22, item 2): the NAS-Bench-201 builder, synflow, NASWOT, the
checksummed score cache and ``ncp-hpo data proxies``.

Every cache these tests write goes to ``tmp_path`` (``NCP_HPO_CACHE`` points there too).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ncp_hpo.models.nb201_net import create_nb201_model
from ncp_hpo.spaces.nb201 import NB201Space
from ncp_hpo.zerocost import (
    PROXY_VERSION,
    ProxyCacheError,
    load_scores,
    proxy_score,
    score_table,
)

NB = NB201Space()
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_CONV = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+"
    "|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
)
MIXED = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|none~2|"


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NCP_HPO_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("arch", [ALL_NONE, ALL_CONV, MIXED, "random"])
def test_builder_params_match_the_space_formula(arch: str) -> None:
    codes = NB.sample(3, seed=7) if arch == "random" else [NB.decode(arch)]
    for code in codes:
        net = create_nb201_model(code, num_classes=100)
        assert sum(p.numel() for p in net.parameters()) == int(NB.params(code))


def test_builder_forward_shape_and_seeded_init() -> None:
    a = create_nb201_model(MIXED, seed=3)
    b = create_nb201_model(MIXED, seed=3)
    assert a(torch.randn(2, 3, 16, 16)).shape == (2, 120)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_synflow_is_deterministic_and_positive() -> None:
    code = NB.decode(MIXED)
    first = proxy_score("nas-bench-201", code)
    assert first > 0 and np.isfinite(first)
    assert proxy_score("nas-bench-201", code) == first
    assert proxy_score("nas-bench-201", MIXED) == first  # arch string, same network


def test_synflow_orders_an_empty_cell_below_a_conv_cell() -> None:
    empty = proxy_score("nas-bench-201", ALL_NONE)
    conv = proxy_score("nas-bench-201", ALL_CONV)
    assert empty < conv
    assert empty == 0.0  # no path from the input to the head


def test_synflow_scores_a_multires_code() -> None:
    code = "16_16-1_1_1_16-1_2_1_1_16_16-1_3_1_1_1_16_16_16-1_4_1_1_1_1_16_16_16_16-16"
    from ncp_hpo.spaces.multires import NetworkCode

    score = proxy_score("seg", NetworkCode.from_string(code).to_vector())
    assert score > 0 and np.isfinite(score)


def test_naswot_is_finite_deterministic_and_needs_a_batch() -> None:
    batch = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    first = proxy_score("nas-bench-201", MIXED, "naswot", batch=batch)
    assert np.isfinite(first)
    assert proxy_score("nas-bench-201", MIXED, "naswot", batch=batch) == first
    with pytest.raises(ValueError, match="minibatch"):
        proxy_score("nas-bench-201", MIXED, "naswot")


def test_score_table_round_trip_and_lookup(tmp_path: Path) -> None:
    codes = NB.sample(6, seed=1)
    table = score_table("nas-bench-201", codes=codes[:4])
    assert len(table) == len(np.unique(codes[:4], axis=0))
    loaded = load_scores("nas-bench-201")
    assert loaded.path == table.path and loaded.path is not None
    assert loaded.path.is_relative_to(tmp_path)
    expected = [proxy_score("nas-bench-201", c) for c in codes[:4]]
    np.testing.assert_array_equal(loaded.lookup(codes[:4]), expected)
    assert loaded.score(codes[0]) == expected[0]
    assert np.isnan(loaded.lookup(NB.decode(ALL_NONE)))  # not scored yet
    # a second call scores only the new codes and keeps the old ones
    grown = score_table("nas-bench-201", codes=codes)
    assert len(load_scores("nas-bench-201")) == len(np.unique(codes, axis=0))
    np.testing.assert_array_equal(grown.lookup(codes[:4]), expected)
    meta = json.loads(loaded.path.with_suffix(".json").read_text())
    assert meta["proxy_version"] == PROXY_VERSION and meta["torch"] == torch.__version__


def test_tampered_or_stale_cache_is_refused() -> None:
    table = score_table("nas-bench-201", codes=NB.sample(2, seed=2))
    assert table.path is not None
    meta_path = table.path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["proxy_version"] = PROXY_VERSION + 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ProxyCacheError, match=r"stale cache .*--force"):
        load_scores("nas-bench-201")
    raw = bytearray(table.path.read_bytes())
    raw[-40] ^= 0xFF
    table.path.write_bytes(bytes(raw))
    with pytest.raises(ProxyCacheError, match=r"checksum mismatch for .*synflow\.npz"):
        load_scores("nas-bench-201")
    with pytest.raises(ProxyCacheError, match="ncp-hpo data proxies"):
        score_table("nas-bench-201", codes=NB.sample(2, seed=2))
    rebuilt = score_table("nas-bench-201", codes=NB.sample(2, seed=2), force=True)
    assert len(load_scores("nas-bench-201")) == len(rebuilt)


def test_missing_cache_names_the_command() -> None:
    with pytest.raises(ProxyCacheError, match="data proxies --benchmark seg"):
        load_scores("seg")


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "proxies", "--benchmark", "no-such-setting"],
        ["data", "proxies", "--benchmark", "3ddet"],
        ["data", "proxies", "--benchmark", "nas-bench-201", "--proxy", "naswot"],
        ["data", "proxies", "--benchmark", "nas-bench-201", "--jobs", "0"],
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from ncp_hpo.cli import main

    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ncp-hpo: error:")
    assert "Traceback" not in err
