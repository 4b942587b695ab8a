"""``ncp-hpo compare --prior SETTING``: ``<sampler>+prior`` rows start from another NAS-Bench-MR
setting's predictor, beside the same sampler from scratch (issue 22, goal 2)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from ncp_hpo.cli import main
from ncp_hpo.exceptions import CompareError
from ncp_hpo.experiments.compare import CompareConfig, run_comparison
from ncp_hpo.experiments.compare._config import base_sampler, study_name

SEG = "seg"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"samplers": ("ncp+prior", "ncp")}, r"ncp\+prior needs --prior SETTING"),
        ({"samplers": ("ncp", "tpe"), "prior": "cls-50-1000"}, r"none is listed"),
        ({"samplers": ("tpe+prior",), "prior": "cls-50-1000"}, r"only the predictor samplers"),
        ({"samplers": ("ncp+prior",), "prior": "imagenet"}, r"must be a NAS-Bench-MR setting"),
        ({"samplers": ("ncp+prior",), "prior": "seg"}, r"is the benchmark itself"),
        (
            {"samplers": ("ncp+prior",), "prior": "video", "objective": "metric+flops"},
            r"--prior needs --objective metric and no --max-flops",
        ),
    ],
)
def test_config_refuses_a_prior_it_cannot_honour(kwargs: dict, message: str) -> None:
    with pytest.raises(CompareError, match=message) as info:
        CompareConfig(SEG, **kwargs)
    assert "\n" not in str(info.value)


def test_nas_bench_201_takes_no_multires_prior() -> None:
    with pytest.raises(CompareError, match="not nas-bench-201's"):
        CompareConfig("nas-bench-201", samplers=("ncp+prior",), prior="seg")


def test_suffixes_name_their_base_sampler() -> None:
    assert base_sampler("ncp+prior") == "ncp" and base_sampler("tpe+zc") == "tpe"
    assert base_sampler("ncp-local+prior") == "ncp-local" and base_sampler("random") == "random"
    config = CompareConfig(SEG, samplers=("ncp+prior", "ncp"), prior="video")
    assert config.settings("table")["prior"] == "video"
    assert "prior" not in CompareConfig(SEG).settings("table")  # old studies still resume


def test_prior_rows_start_from_the_prior_and_are_recorded(
    shared_data_dir: Path, tmp_path: Path
) -> None:
    config = CompareConfig(
        SEG,
        samplers=("ncp+prior", "ncp"),
        trials=4,
        seeds=2,
        budgets=(2,),
        mode="table",
        out=tmp_path / "out",
        data_dir=shared_data_dir,
        progress=False,
        prior="cls-50-1000",
    )
    result = run_comparison(config)
    assert not result.errors, result.errors
    runs = {(r.sampler, r.seed): r for r in result.runs}
    assert set(runs) == {(s, k) for s in ("ncp+prior", "ncp") for k in (0, 1)}
    for seed in (0, 1):
        # NCPSampler(prior=P) propagates from the first trial (no random start-up), so its
        # first code is the prior's pick: the same for both seeds, and not the random one
        assert runs["ncp+prior", seed].codes[0] != runs["ncp", seed].codes[0]
    assert runs["ncp+prior", 0].codes[0] == runs["ncp+prior", 1].codes[0]
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert data["config"]["prior"] == "cls-50-1000"
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "Prior of the `+prior` rows: the `cls-50-1000` predictor" in summary
    name = study_name(SEG, "ncp+prior", 0)
    db = tmp_path / "out" / "studies" / f"{name}.db"
    stored = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    assert len(stored.trials) == 4

    # the studies remember their prior: another one is refused, in one line
    code = main(
        [
            "compare", "--benchmark", SEG, "--mode", "table", "--samplers", "ncp+prior,ncp",
            "--trials", "4", "--seeds", "2", "--prior", "video", "--jobs", "1", "--no-mlflow",
            "--quiet", "--out", str(tmp_path / "out"), "--data-dir", str(shared_data_dir),
        ]
    )  # fmt: skip
    assert code == 2
