"""The OptunaHub package ``package/samplers/ncp`` loads with optunahub and runs a study."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "package" / "samplers" / "ncp"
OP_SCORE = (0.0, 1.0, 2.0, 3.0, 0.5)


def test_package_layout_and_front_matter() -> None:
    for name in ("__init__.py", "README.md", "LICENSE", "example.py", "requirements.txt"):
        assert (PACKAGE / name).is_file(), name
    text = (PACKAGE / "README.md").read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md starts with a front-matter block"
    fields = dict(line.split(":", 1) for line in match.group(1).splitlines())
    for key in ("author", "title", "description", "tags", "optuna_versions", "license"):
        assert fields.get(key, "").strip(), key  # the registry's header check
    assert "sampler" in fields["tags"]
    for section in ("## Abstract", "## APIs", "## Installation", "## Example", "## Others"):
        assert section in text
    assert not re.search(r"<[A-Za-z!/]", text), "no HTML in the README (the registry strips it)"
    assert (PACKAGE / "LICENSE").read_text() == (REPO / "LICENSE").read_text()


def test_readme_lists_the_real_signature() -> None:
    """The APIs section shows ``NCPSampler``'s signature as it is, defaults included, and
    describes every argument a user is likely to set."""
    import inspect

    from ncp_hpo import NCPSampler

    params = inspect.signature(NCPSampler).parameters.values()
    shown = ", ".join(
        p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
        for p in params
    )
    text = (PACKAGE / "README.md").read_text(encoding="utf-8")
    assert f"- `NCPSampler(*, {shown})`" in text
    for name in ("space", "prior", "lam", "mode", "strategy", "warm_start", "seed"):
        assert f"  - `{name}`" in text, name


def test_load_local_module_runs_a_study() -> None:
    optunahub = pytest.importorskip("optunahub", reason="needs the 'hub' extra (optunahub)")
    import optuna

    module = optunahub.load_local_module(
        package="samplers/ncp", registry_root=str(REPO / "package")
    )
    from ncp_hpo import NCPSampler

    assert module.NCPSampler is NCPSampler
    space = module.NB201Space()

    def objective(trial: optuna.Trial) -> float:
        ops = space.to_indices(space.suggest(trial))
        return float(sum(OP_SCORE[int(op)] for op in ops))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = module.NCPSampler(space=space, n_startup_trials=5, iterations=10, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=12)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 12
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    # after the start-up trials the sampler proposes codes itself: no duplicates of earlier trials
    seen = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(seen[5:])) == len(seen[5:])
    assert all(tuple(sorted(t.params.items())) not in seen[: t.number] for t in trials[5:])
