#!/usr/bin/env bash
# Release check: build the sdist and the wheel, check what they hold, install the wheel into a
# fresh virtualenv (no system site-packages) and run a smoke test there (import, CLI, a short
# NCP study). Prints the time of each step and the artefact sizes. Needs no benchmark data.
#
#   bash benchmarks/release_check.sh [PYTHON]      # PYTHON: with `build` and `twine` (default python3)
#
# torch==2.13.0 is installed first (a CPU wheel where the index offers one) so that resolving
# the wheel's dependencies does not pull the CUDA build. Everything happens in a temporary
# folder that is removed at the end (KEEP=1 keeps it).
set -euo pipefail

PY=${1:-python3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d -t ncp-hpo-release-XXXXXX)
if [[ -z "${KEEP:-}" ]]; then trap 'rm -rf "$WORK"' EXIT; else echo "keeping $WORK"; fi

step() { printf '%-34s %6.1f s\n' "$1" "$2"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

t=$(now)
"$PY" -m build --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 \
    || { tail -20 "$WORK/build.log"; echo "release check: build failed" >&2; exit 1; }
step "python -m build (sdist + wheel)" "$(since "$t")"
WHEEL=$(ls "$WORK"/dist/*.whl)
SDIST=$(ls "$WORK"/dist/*.tar.gz)
# The metadata and the README as PyPI renders them (twine: the `dev` extra).
"$PY" -m twine check --strict "$SDIST" "$WHEEL"

# What the artefacts hold: the package and its license, no tests, benchmarks or run outputs.
"$PY" - "$WHEEL" "$SDIST" <<'PYEOF'
import sys, tarfile, zipfile
wheel, sdist = sys.argv[1], sys.argv[2]
wnames = zipfile.ZipFile(wheel).namelist()
snames = [n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n]
bad_w = [n for n in wnames if not (n.startswith("ncp_hpo/") or ".dist-info/" in n)]
bad_s = [n for n in snames if n.startswith(("benchmarks/", "package/", ".ci/"))
         or n.endswith((".db", ".pkl", ".pt", ".png", ".safetensors"))]
problems = []
if bad_w:
    problems.append(f"wheel holds files outside ncp_hpo/: {bad_w[:5]}")
if bad_s:
    problems.append(f"sdist holds benchmark data or run outputs: {bad_s[:5]}")
if not any(n.endswith(".dist-info/licenses/LICENSE") for n in wnames):
    problems.append("wheel lacks dist-info/licenses/LICENSE")
if "LICENSE" not in snames:
    problems.append("sdist lacks LICENSE")
if "ncp_hpo/py.typed" not in wnames:
    problems.append("wheel lacks ncp_hpo/py.typed")
for p in problems:
    print(f"release check: {p}", file=sys.stderr)
print(f"wheel: {len(wnames)} files; sdist: {len(snames)} files")
sys.exit(1 if problems else 0)
PYEOF
printf '%-34s %6.0f KiB\n' "wheel $(basename "$WHEEL")" "$(( $(stat -c %s "$WHEEL") / 1024 ))"
printf '%-34s %6.0f KiB\n' "sdist $(basename "$SDIST")" "$(( $(stat -c %s "$SDIST") / 1024 ))"

t=$(now)
"$PY" -m venv "$WORK/venv"          # no --system-site-packages: only what the wheel declares
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q "torch==2.13.0" >"$WORK/pip-torch.log" 2>&1 \
    || { tail -5 "$WORK/pip-torch.log"; echo "release check: torch install failed" >&2; exit 1; }
step "fresh venv + torch==2.13.0" "$(since "$t")"

t=$(now)
"$VPY" -m pip install -q "$WHEEL" >"$WORK/pip-wheel.log" 2>&1 \
    || { tail -5 "$WORK/pip-wheel.log"; echo "release check: wheel install failed" >&2; exit 1; }
step "pip install <wheel> (+ deps)" "$(since "$t")"

t=$(now)
cd "$WORK"                          # away from the checkout: import the installed copy
"$WORK/venv/bin/ncp-hpo" --version
"$WORK/venv/bin/ncp-hpo" --help >/dev/null
OMP_NUM_THREADS=1 "$VPY" - <<'PYEOF'
import optuna
import ncp_hpo
from ncp_hpo import NCPSampler
from ncp_hpo.spaces import NB201Space

assert "site-packages" in ncp_hpo.__file__, ncp_hpo.__file__
space = NB201Space()
score = (0.0, 1.0, 2.0, 3.0, 0.5)

def objective(trial):
    return float(sum(score[int(op)] for op in space.to_indices(space.suggest(trial))))

optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(
    direction="maximize",
    sampler=NCPSampler(space=space, n_startup_trials=5, iterations=10, seed=0),
)
study.optimize(objective, n_trials=12)
assert len(study.trials) == 12
print(f"smoke study: 12 trials, best {study.best_value:.1f} of 18.0 (ncp-hpo {ncp_hpo.__version__})")
PYEOF
step "smoke test (CLI + 12-trial study)" "$(since "$t")"
echo "release check: OK"
