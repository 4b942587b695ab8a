"""One grammar for every ``ncp-hpo`` command (issues 23 and 25).

Real argv through :func:`ncp_hpo.cli.main`: no abbreviations, typos named with the closest
option, ``--quiet`` on every command, group commands without a sub-command, one torch thread
per process unless ``--threads`` asks for more, and common mistakes as one line + exit 2.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest
from _cli import all_parsers as _leaf_parsers
from _cli import run_cli as _run

from ncp_hpo.cli import build_parser
from ncp_hpo.cli._options import QUIET_HELP

CODE = "8_8-1_1_1_8-1_2_1_1_8_8-1_3_1_1_1_8_8_8-1_4_1_1_1_1_8_8_8_8-8"
SMALL = [
    "--epochs", "1", "--train-size", "32", "--val-size", "16", "--image-size", "16",
    "--batch-size", "16", "--seed", "0", "--device", "cpu",
]  # fmt: skip


# -- no abbreviations ----------------------------------------------------------------------
def test_every_parser_is_built_without_abbreviations() -> None:
    for name, parser in _leaf_parsers().items():
        assert parser.allow_abbrev is False, name


@pytest.mark.parametrize(
    ("argv", "abbreviation", "option"),
    [
        (["compare", "--benchmark", "seg", "--seed", "3"], "--seed", "--seeds"),
        (["search", "--setting", "seg", "--iter", "3"], "--iter", "--iters"),
        (["train", "--task", "cls", "--code", CODE, "--epoch", "1"], "--epoch", "--epochs"),
        (["study", "--task", "cls", "--trial", "3"], "--trial", "--trials"),
        (["worker", "--study-name", "s", "--bench", "nas-bench-201"], "--bench", "--benchmark"),
        (["data", "fetch", "--allow"], "--allow", "--allow-unverified"),
        (["data", "list", "--data", "x"], "--data", "--data-dir"),
        (["data", "info", "seg", "--orac"], "--orac", "--oracle"),
        (["data", "proxies", "--bench", "seg"], "--bench", "--benchmark"),
    ],
    ids=lambda v: v[0] if isinstance(v, list) and v[0] != "data" else None,
)
def test_abbreviations_are_refused_on_every_subcommand(
    argv: list[str], abbreviation: str, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(argv, capsys)
    assert code == 2 and out == ""
    assert err == f"ncp-hpo: error: unrecognized argument {abbreviation} (did you mean {option}?)\n"


# -- common mistakes: one line, exit 2 --------------------------------------------------------
T = ["study", "--task", "cls", "--trials", "3"]
MISTAKES: list[tuple[list[str], str]] = [
    # a group command without its sub-command (argparse's required sub-parsers)
    ([], "missing COMMAND: one of data, search, compare, train, study, worker "
     "(see 'ncp-hpo --help')"),
    (["data"], "missing ACTION: one of fetch, list, info, proxies (see 'ncp-hpo data --help')"),
    # misspelt commands and options, named with the closest one
    (["stduy"], "unrecognized COMMAND 'stduy' (did you mean study?)"),
    (["data", "lsit"], "unrecognized ACTION 'lsit' (did you mean list?)"),
    (["study", "--task", "cls", "--trails", "3"],
     "unrecognized argument --trails (did you mean --trials?)"),
    ([*T, "--epoch", "2"], "unrecognized argument --epoch (did you mean --epochs?)"),
    ([*T, "-q"], "unrecognized argument -q (did you mean --quiet?)"),
    (["compare", "--benchmark", "seg", "--sampler", "ncp"],
     "unrecognized argument --sampler (did you mean --samplers?)"),
    (["compare", "--benchmark", "seg", "--quite"],
     "unrecognized argument --quite (did you mean --quiet?)"),
    (["search", "--setting", "seg", "--lamda", "0.3"],
     "unrecognized argument --lamda (did you mean --lam?)"),
    (["worker", "--study-name", "s", "--benchmark", "seg", "--trails", "5"],
     "unrecognized argument --trails (did you mean --trials?)"),
    (["data", "info", "seg", "--orcale"],
     "unrecognized argument --orcale (did you mean --oracle?)"),
    (["data", "list", "--data_dir", "x"],
     "unrecognized argument --data_dir (did you mean --data-dir?)"),
    (["train", "--task", "cls", "--code", CODE, "--save-weight", "w.pt"],
     "unrecognized argument --save-weight (did you mean --save-weights?)"),
    # a command's option before the command
    (["--verbose", "study", "--task", "cls"],
     "--verbose goes after the command: ncp-hpo study --verbose ..."),
    (["--data-dir", "x", "data", "list"],
     "--data-dir goes after the command: ncp-hpo data list --data-dir ..."),
    # values out of range
    ([*T, "--threads", "0"],
     "argument --threads: must be >= 1, got 0 (see 'ncp-hpo study --help')"),
    (["study", "--task", "cls", "--trials", "many"],
     "argument --trials: 'many' is not an integer (see 'ncp-hpo study --help')"),
    (["train", "--task", "cls", "--code", CODE, "--device", "gpu"],
     "argument --device: expected cpu, cuda, cuda:N or auto, got 'gpu' "
     "(see 'ncp-hpo train --help')"),
    (["data", "proxies", "--benchmark", "seg", "--jobs", "0"],
     "argument --jobs: expected a positive integer, got '0' (see 'ncp-hpo data proxies --help')"),
    # a required option left out
    (["study", "--task", "cls"],
     "the following arguments are required: --trials (see 'ncp-hpo study --help')"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "line"), MISTAKES, ids=[" ".join(a) for a, _ in MISTAKES])
def test_common_mistakes_are_one_line_and_exit_2(
    argv: list[str], line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(argv, capsys)
    assert (code, out) == (2, "")
    assert err == f"ncp-hpo: error: {line}\n"


def test_there_are_at_least_twenty_common_mistakes() -> None:
    assert len(MISTAKES) >= 20


# -- --quiet --------------------------------------------------------------------------------
def test_quiet_has_one_meaning_on_every_command() -> None:
    parsers = _leaf_parsers()
    commands = [n for n, p in parsers.items() if p.get_default("func") is not None]
    assert len(commands) == 9  # data fetch/list/info/proxies, search, compare, train, study, worker
    for name in commands:
        action = parsers[name]._option_string_actions.get("--quiet")
        assert action is not None, f"'{name}' has no --quiet"
        assert action.help == QUIET_HELP, name
    assert "--quiet prints only the result" in " ".join(parsers[""].format_help().split())


def test_data_list_quiet_prints_only_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(["data", "list"], capsys)
    assert code == 0 and out.startswith("search order: ")
    code, quiet, _ = _run(["data", "list", "--quiet"], capsys)
    assert code == 0 and quiet.startswith("SETTING")
    assert quiet.splitlines() == out.splitlines()[1:]


def test_data_info_accepts_quiet(shared_data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["data", "info", "nas-bench-201", "--data-dir", str(shared_data_dir), "--quiet"]
    code, out, err = _run(argv, capsys)
    assert code == 0 and out.startswith("setting:      nas-bench-201") and err == ""


# -- threads -----------------------------------------------------------------------------------
def test_threads_default_to_one_everywhere() -> None:
    parser = build_parser()
    for argv in (
        ["train", "--task", "cls", "--code", CODE],
        ["study", "--task", "cls", "--trials", "3"],
        ["worker", "--study-name", "s", "--benchmark", "seg"],
    ):
        assert parser.parse_args(argv).threads == 1, argv[0]
    assert parser.parse_args([*argv, "--threads", "3"]).threads == 3


@pytest.mark.parametrize(("extra", "expected"), [([], 1), (["--threads", "2"], 2)])
def test_train_runs_with_one_torch_thread_unless_asked(
    extra: list[str], expected: int, monkeypatch: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    import ncp_hpo.trainers
    from ncp_hpo.exceptions import TrainingError

    seen: list[int] = []

    def fake_train_code(*args: Any, **kwargs: Any) -> Any:
        seen.append(torch.get_num_threads())
        raise TrainingError("stopped by the test")

    monkeypatch.setattr(ncp_hpo.trainers, "train_code", fake_train_code)
    before = torch.get_num_threads()
    argv = ["train", "--task", "cls", "--code", CODE, *SMALL, "--no-mlflow", *extra]
    code, _, err = _run(argv, capsys)
    assert code == 2 and err.startswith("ncp-hpo: error: ") and err.count("\n") == 1
    assert err.endswith("stopped by the test\n")
    assert seen == [expected]
    assert torch.get_num_threads() == before  # restored


# -- study: budget within the random start-up ---------------------------------------------------
def _config(**kw: Any) -> Any:
    base = {
        "sampler": "ncp",
        "trials": 5,
        "prior": None,
        "enqueue": [],
        "startup_trials": None,
        "sampler_params": {},
    }
    return types.SimpleNamespace(**{**base, **kw})


def test_study_warns_when_the_trials_end_within_the_startup_trials() -> None:
    from ncp_hpo.cli.study import _startup_warning

    line = _startup_warning(_config())
    assert line is not None and "\n" not in line
    assert line.startswith("ncp-hpo: warning: --trials 5 is within the random start-up trials")
    assert "use --trials > 10" in line
    assert _startup_warning(_config(trials=11)) is None
    assert _startup_warning(_config(sampler="random")) is None
    assert _startup_warning(_config(prior="cls-50-1000")) is None  # 0 start-up trials
    assert _startup_warning(_config(enqueue=["code"])) is None
    assert _startup_warning(_config(startup_trials=2)) is None


def test_compare_quiet_prints_only_where_the_report_is(
    shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    argv = ["compare", "--benchmark", "nas-bench-201", "--samplers", "random", "--trials", "3",
            "--seeds", "1", "--budgets", "3", "--jobs", "1", "--no-mlflow", "--out", str(out),
            "--data-dir", str(shared_data_dir), "--quiet"]  # fmt: skip
    code, printed, err = _run(argv, capsys)
    assert code == 0 and err == ""
    assert printed.startswith(f"written under {out}: ") and printed.count("\n") == 1
    assert "summary.md" in printed
    # every entry the line names exists under --out
    for name in printed.split(": ", 1)[1].strip().split(", "):
        assert (out / name.rstrip("/")).exists(), name
