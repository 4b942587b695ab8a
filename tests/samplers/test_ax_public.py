"""Ax, the public way: the README snippet runs alone, fallbacks are counted from a Client,
and the quickstart example prints no Ax INFO lines."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _readme_block(heading: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block under '## {heading}'"
    return match.group(1)


def test_readme_ax_snippet_runs_on_its_own(
    shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ncp_hpo.samplers import FALLBACK_KEY, count_fallback_trials

    monkeypatch.setenv("NCP_HPO_DATA", str(shared_data_dir))
    namespace: dict[str, Any] = {}
    exec(compile(_readme_block("NCP in Ax"), "README.md", "exec"), namespace)  # fresh globals
    counts = count_fallback_trials(namespace["client"])
    assert sum(counts.values()) == 30 and counts["Sobol"] == 10
    assert counts.get("NCP", 0) + counts[FALLBACK_KEY] == 20
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed == str(counts)


def test_count_fallback_trials_takes_a_client_experiment_or_strategy(
    shared_data_dir: Path,
) -> None:
    from ax.api.client import Client

    from ncp_hpo import load_benchmark
    from ncp_hpo.samplers import FALLBACK_KEY, count_fallback_trials, ncp_generation_strategy

    table = load_benchmark("nas-bench-201", data_dir=shared_data_dir)
    space = table.space
    client = Client(random_seed=1)
    with pytest.raises(Exception, match="configure_experiment"):
        count_fallback_trials(client)
    client.configure_experiment(name="t", parameters=space.ax_parameters())
    client.configure_optimization(objective="acc")
    gs = ncp_generation_strategy(space, n_init=3, seed=1, iterations=5)
    client.set_generation_strategy(gs)
    for _ in range(6):
        for index, params in client.get_next_trials(max_trials=1).items():
            acc = table.query(space.from_params(params))["Acc"]
            client.complete_trial(trial_index=index, raw_data={"acc": acc})
    counts = count_fallback_trials(client)
    assert counts == count_fallback_trials(gs) == count_fallback_trials(gs.experiment)
    assert counts["Sobol"] == 3 and sum(counts.values()) == 6 and FALLBACK_KEY in counts
    with pytest.raises(TypeError, match="Client, Experiment or GenerationStrategy"):
        count_fallback_trials("nb201")  # type: ignore[arg-type]


def test_ax_quickstart_prints_no_info_lines(shared_data_dir: Path) -> None:
    env = {**os.environ, "NCP_HPO_DATA": str(shared_data_dir), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "ax_quickstart.py"), "--trials", "12"],
        capture_output=True, text=True, env=env, timeout=600, check=True,
    )  # fmt: skip
    assert "INFO" not in proc.stderr and "INFO" not in proc.stdout, proc.stderr[-2000:]
    assert proc.stderr.strip() == "", proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("best accuracy")
    assert lines[2].startswith("trials by generator: {") and "'Sobol': 10" in lines[2]
