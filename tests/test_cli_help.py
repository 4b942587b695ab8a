"""The ``ncp-hpo`` command line: fast to start, one help style, one error format."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _cli import all_parsers as _parsers

from ncp_hpo.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "optuna", "mlflow", "ax", "matplotlib", "sklearn", "scipy")
# one metavar per concept (issue 14): folders DIR, tracking URIs URI, counts N
METAVARS = {
    "--data-dir": "DIR",
    "--out": "DIR",
    "--mlflow-uri": "URI",
    "--mlflow-experiment": "NAME",
    "--trials": "N",
    "--seeds": "N",
    "--seed": "N",
    "--epochs": "N",
    "--batch-size": "N",
    "--train-size": "N",
    "--val-size": "N",
    "--iters": "N",
    "--jobs": "N",
}


def test_building_the_parser_imports_no_heavy_library() -> None:
    code = (
        "import sys, json; import ncp_hpo.cli as c; c.build_parser().format_help(); "
        f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert json.loads(out.stdout) == []


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    import ncp_hpo

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"ncp-hpo {ncp_hpo.__version__}"


def test_every_command_has_examples_and_every_option_help() -> None:
    for name, parser in _parsers().items():
        assert parser.epilog and "examples:" in parser.epilog, f"'{name}' has no examples"
        for action in parser._actions:
            if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, f"'{name}' {action.option_strings or action.dest} has no help"


def test_defaults_are_written_one_way() -> None:
    for name, parser in _parsers().items():
        text = parser.format_help()
        # only "(default: X)": no "(default X)", "default 32", "(200)" or "(default)" left
        assert not re.search(r"\(default [^:]|\bdefault \d|\(default\)|\(\d+\)", text), name
        for action in parser._actions:
            shown = action.default not in (None, False, True, [], argparse.SUPPRESS)
            if action.option_strings and shown and action.help != argparse.SUPPRESS:
                assert "(default: " in parser._get_formatter()._expand_help(action), (
                    name,
                    action.option_strings,
                )


def test_the_same_concept_has_the_same_metavar() -> None:
    for name, parser in _parsers().items():
        for action in parser._actions:
            for opt in action.option_strings:
                if opt in METAVARS:
                    assert action.metavar == METAVARS[opt], (name, opt, action.metavar)


def test_quiet_is_the_one_flag_and_no_progress_is_a_hidden_alias() -> None:
    parsers = _parsers()
    for name in ("search", "compare", "train", "study", "worker"):
        assert "--quiet" in parsers[name].format_help(), name
        assert "--no-progress" not in parsers[name].format_help(), name
    args = build_parser().parse_args(["search", "--setting", "seg", "--no-progress"])
    assert args.quiet is True


def test_usage_errors_have_the_handler_error_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--benchmark", "seg", "--trials", "many"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith("ncp-hpo: error: argument --trials: invalid int value: 'many'")
    assert err.count("\n") == 1


def test_sampler_param_of_the_wrong_type_names_type_and_range() -> None:
    from ncp_hpo.samplers import NCPSampler
    from ncp_hpo.search._sampler_params import SamplerParamError, check_sampler_params

    with pytest.raises(SamplerParamError, match=r"iterations='abc': expected an integer >= 1"):
        check_sampler_params(NCPSampler, {"iterations": "abc"})
    with pytest.raises(SamplerParamError, match=r"lr=-1: expected a number > 0"):
        check_sampler_params(NCPSampler, {"lr": -1})
    with pytest.raises(SamplerParamError, match=r"'continuous', 'winner_takes_all'"):
        check_sampler_params(NCPSampler, {"strategy": "greedy"})
    with pytest.raises(SamplerParamError, match=r"online=1: expected true or false"):
        check_sampler_params(NCPSampler, {"online": 1})
    ok = check_sampler_params(NCPSampler, {"iterations": 5, "lr": 2, "strategy": "continuous"})
    assert ok == {"iterations": 5, "lr": 2.0, "strategy": "continuous"}
    assert isinstance(ok["lr"], float)


def test_sampler_param_error_on_the_command_line(
    shared_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "worker", "--study-name", "s", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--no-mlflow",
        "--benchmark", "nas-bench-201", "--data-dir", str(shared_data_dir),
        "--sampler-param", "iterations=abc",
    ]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "ncp-hpo: error: --sampler-param: sampler parameter iterations='abc'" in err
    assert "expected an integer >= 1" in err


def test_compare_warns_when_the_budget_is_within_the_startup_trials() -> None:
    from ncp_hpo.experiments.compare._config import startup_warning

    line = startup_warning(("ncp", "random", "tpe"), 10)
    assert line is not None and "\n" not in line
    assert "of ncp (10), tpe (10):" in line  # random search has no start-up phase to warn about
    assert startup_warning(("ncp", "random", "tpe"), 11) is None
    assert startup_warning(("random",), 1) is None
    assert "nsga2 (50)" in (startup_warning(("ncp", "nsga2"), 20) or "")
