#!/usr/bin/env bash
# Screenshots of MLflow 3's UI for ncp-hpo runs, taken with headless Chromium.
#
#   bash docs/mlflow-screenshots.sh [OUT_DIR]        # default ./mlflow-screenshots
#
# Starts a throw-away `mlflow server` on 127.0.0.1 (SQLite store in a temporary folder),
# logs a 3-trial `ncp-hpo study` (real training, digits, 1 epoch) and a 12-trial
# `ncp-hpo compare` on NAS-Bench-201 (benchmark data: `ncp-hpo data fetch` or NCP_HPO_DATA),
# then captures:
#   experiment.png  the study's experiment page (opens on the runs table: "Model training")
#   trial.png       one trial run (params, metrics, the architecture picture)
#   compare.png     the comparison's experiment: the parent run (children collapsed under it)
#                   and one "<sampler> (median of 2 seeds)" summary row per sampler
#   compare-run.png the comparison's parent run: its description (verdict and summary
#                   table), the winner/verdict tags and the <sampler>.median_best metrics
# Needs Chromium (Debian: `apt-get update && apt-get install -y chromium`). The images are
# run outputs: keep them out of git.
set -euo pipefail

OUT=$(realpath -m "${1:-mlflow-screenshots}")
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
[[ -n "$CHROMIUM" ]] || { echo "mlflow-screenshots: error: chromium not found (apt-get install -y chromium)" >&2; exit 2; }
PORT=${PORT:-5077}
URI="http://127.0.0.1:$PORT"
WORK=$(mktemp -d -t ncp-mlflow-shots-XXXXXX)
mkdir -p "$OUT"

mlflow server --host 127.0.0.1 --port "$PORT" --workers 1 \
    --backend-store-uri "sqlite:///$WORK/mlflow.db" --artifacts-destination "$WORK/artifacts" \
    >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 120); do curl -sf "$URI/health" >/dev/null && break; sleep 0.5; done
curl -sf "$URI/health" >/dev/null || { tail -20 "$WORK/server.log"; exit 1; }

cd "$WORK"
ncp-hpo study --task cls --sampler ncp --trials 3 --startup-trials 2 --epochs 1 \
    --train-size 256 --val-size 128 --threads 1 --study-name digits-ncp \
    --mlflow-uri "$URI" --quiet
ncp-hpo compare --benchmark nas-bench-201 --samplers ncp,random,tpe --trials 12 --seeds 2 \
    --jobs 1 --mlflow-uri "$URI" --mlflow-experiment ncp-hpo-compare --out compare --quiet

# experiment ids, one trial run id and the comparison's parent run id, from the tracking server
read -r STUDY_EXP TRIAL_RUN COMPARE_EXP COMPARE_RUN < <(python - "$URI" <<'PY'
import sys
from mlflow.tracking import MlflowClient
c = MlflowClient(sys.argv[1])
study = c.get_experiment_by_name("digits-ncp")
compare = c.get_experiment_by_name("ncp-hpo-compare")
trial = c.search_runs([study.experiment_id], filter_string="tags.`ncp_hpo.role` = 'trial'")[0]
parent = c.search_runs([compare.experiment_id], filter_string="tags.`ncp_hpo.role` = 'compare'")[0]
print(study.experiment_id, trial.info.run_id, compare.experiment_id, parent.info.run_id)
PY
)

shot() {  # shot FILE URL: a 1600x1000 capture after the page's scripts have run
    "$CHROMIUM" --headless=new --no-sandbox --disable-gpu --hide-scrollbars \
        --window-size=1600,1000 --virtual-time-budget=20000 \
        --screenshot="$OUT/$1" "$2" >/dev/null 2>&1
    echo "$OUT/$1"
}
# MLflow 3.17's sidebar has a global "GenAI | Model training" switch (kept in the browser,
# GenAI by default) that wins over the experiment's kind tag; the query parameter picks
# "Model training", as ncp-hpo's printed links do.
ML="workflowType=machine_learning"
shot experiment.png "$URI/#/experiments/$STUDY_EXP?$ML"
shot trial.png "$URI/#/experiments/$STUDY_EXP/runs/$TRIAL_RUN?$ML"
shot compare.png "$URI/#/experiments/$COMPARE_EXP?$ML"
shot compare-run.png "$URI/#/experiments/$COMPARE_EXP/runs/$COMPARE_RUN?$ML"
