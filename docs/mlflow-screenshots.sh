#!/usr/bin/env bash
# Screenshots of MLflow 3's UI for ncp-hpo runs, taken with headless Chromium, and checks of
# what the rendered pages show (issue 25: "who won" visible in a real browser).
#
#   bash docs/mlflow-screenshots.sh [OUT_DIR]        # default ./mlflow-screenshots
#
# Starts a throw-away `mlflow server` on 127.0.0.1 (SQLite store in a temporary folder),
# logs a 3-trial `ncp-hpo study` (real training, digits, 1 epoch) and a 12-trial
# `ncp-hpo compare` on NAS-Bench-201 (benchmark data: `ncp-hpo data fetch` or NCP_HPO_DATA),
# then captures (PNG, and the rendered DOM as NAME.html / its text as NAME.txt):
#   experiment.png  the study's experiment page (the link `ncp-hpo study` prints)
#   study-run.png   the study's parent run: best trial, its value and code (tags, description)
#   trial.png       one trial run (params, metrics)
#   compare.png     the comparison's experiment page (runs table, as a user first sees it)
#   compare-view.png the same table in the experiment's saved view, if it has one (MLflow
#                   3.17 "Views": experiment tag mlflow.sharedViewState.<key>)
#   compare-run.png the comparison's parent run: its description (verdict and summary
#                   table), the winner/verdict tags and the <sampler>.median_best metrics
#   link-N.*        every http link `ncp-hpo study` and `ncp-hpo compare` printed
# and checks, from the rendered DOM, that
#   - the comparison's runs table (in its saved view if it has one: MLflow's default table
#     shows no metric column) shows each "<sampler> (median of N seeds)" row and a best
#     column (median_best) with each sampler's value, without expanding anything;
#   - the comparison's parent run page shows the verdict and the winner tag;
#   - the study's parent run page shows the best trial, its value and its code;
#   - every printed link points at this server and opens a "Model training" page there
#     (not a GenAI page, not "page not found").
# Prints one line per check; exits 1 with a one-line reason if any check fails (2 if a tool
# is missing). Needs Chromium (Debian: `apt-get install -y chromium`). The images are run
# outputs: keep them out of git.
set -euo pipefail

OUT=$(realpath -m "${1:-mlflow-screenshots}")
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)}
[[ -n "$CHROMIUM" ]] || { echo "mlflow-screenshots: error: chromium not found (apt-get install -y chromium)" >&2; exit 2; }
PORT=${PORT:-5077}
URI="http://127.0.0.1:$PORT"
SIZE=${SIZE:-1920,1080}
WORK=$(mktemp -d -t ncp-mlflow-shots-XXXXXX)
mkdir -p "$OUT"
START=$SECONDS

mlflow server --host 127.0.0.1 --port "$PORT" --workers 1 \
    --backend-store-uri "sqlite:///$WORK/mlflow.db" --artifacts-destination "$WORK/artifacts" \
    >"$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 120); do curl -sf "$URI/health" >/dev/null && break; sleep 0.5; done
curl -sf "$URI/health" >/dev/null || { tail -20 "$WORK/server.log"; echo "mlflow-screenshots: FAILED: mlflow server did not start on $URI" >&2; exit 1; }

cd "$WORK"
# Both commands' output is kept: the links they print are checked below.
ncp-hpo study --task cls --sampler ncp --trials 3 --startup-trials 2 --epochs 1 \
    --train-size 256 --val-size 128 --threads 1 --study-name digits-ncp \
    --mlflow-uri "$URI" --quiet >"$WORK/study.out" 2>&1 || { cat "$WORK/study.out"; exit 1; }
ncp-hpo compare --benchmark nas-bench-201 --samplers ncp,random,tpe --trials 12 --seeds 2 \
    --jobs 1 --mlflow-uri "$URI" --mlflow-experiment ncp-hpo-compare --out compare \
    >"$WORK/compare.out" 2>"$WORK/compare.err" || { cat "$WORK/compare.out" "$WORK/compare.err"; exit 1; }
echo "logged a study and a comparison in $((SECONDS - START)) s"

# What the pages should show, from the tracking server: ids and the values to look for.
python - "$URI" >"$WORK/expect.json" <<'PY'
import json, sys
from mlflow.tracking import MlflowClient
c = MlflowClient(sys.argv[1])
study = c.get_experiment_by_name("digits-ncp")
compare = c.get_experiment_by_name("ncp-hpo-compare")
def runs(exp, role):
    return c.search_runs([exp.experiment_id], filter_string=f"tags.`ncp_hpo.role` = '{role}'")
trial = runs(study, "trial")[0]
sparent = runs(study, "study")[0]
cparent = runs(compare, "compare")[0]
summaries = {r.data.tags.get("sampler"): (r.info.run_name, r.data.metrics.get("median_best"))
             for r in runs(compare, "compare-summary")}
json.dump({
    "study_exp": study.experiment_id, "trial_run": trial.info.run_id,
    "trial_name": trial.info.run_name, "study_run": sparent.info.run_id,
    "best_trial": sparent.data.tags.get("best_trial"), "best_value": sparent.data.tags.get("best_value"),
    "best_code": sparent.data.tags.get("best_code"),
    "compare_exp": compare.experiment_id, "compare_run": cparent.info.run_id,
    "verdict": cparent.data.tags.get("verdict"), "winner": cparent.data.tags.get("winner"),
    "summaries": summaries,
    # saved views of the comparison's runs table (MLflow 3.17: experiment tags
    # mlflow.sharedViewState.<key>; the default table shows no metric column)
    "compare_view": next((k.split(".", 2)[2] for k in sorted(compare.tags)
                          if k.startswith("mlflow.sharedViewState.")), ""),
}, sys.stdout)
PY
get() { python -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/expect.json" "$1"; }

render() {  # render NAME URL: NAME.png and NAME.html (+ NAME.txt, its visible text) after the scripts ran
    local flags=(--headless=new --no-sandbox --disable-gpu --hide-scrollbars
                 --window-size="$SIZE" --virtual-time-budget=15000)
    "$CHROMIUM" "${flags[@]}" --screenshot="$OUT/$1.png" "$2" >/dev/null 2>&1 || true
    "$CHROMIUM" "${flags[@]}" --dump-dom "$2" >"$OUT/$1.html" 2>/dev/null || true
    python - "$OUT/$1.html" "$2" <<'PY'
import html, re, sys
s = open(sys.argv[1], encoding="utf-8", errors="replace").read()
s = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", " ", s, flags=re.S)
t = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", s)))
open(sys.argv[1][:-5] + ".txt", "w", encoding="utf-8").write(sys.argv[2] + "\n" + t + "\n")
PY
    echo "captured $OUT/$1.png"
}
# MLflow 3.17's sidebar has a global "GenAI | Model training" switch (kept in the browser,
# GenAI by default) that wins over the experiment's kind tag; the query parameter picks
# "Model training", as ncp-hpo's printed links do.
ML="workflowType=machine_learning"
render experiment "$URI/#/experiments/$(get study_exp)?$ML"
render study-run "$URI/#/experiments/$(get study_exp)/runs/$(get study_run)?$ML"
render trial "$URI/#/experiments/$(get study_exp)/runs/$(get trial_run)?$ML"
render compare "$URI/#/experiments/$(get compare_exp)?$ML"
VIEW=$(get compare_view)
[[ -z "$VIEW" ]] || render compare-view "$URI/#/experiments/$(get compare_exp)/runs?viewStateShareKey=$VIEW&$ML"
render compare-run "$URI/#/experiments/$(get compare_exp)/runs/$(get compare_run)?$ML"

# Every link the two commands printed (ncp-hpo's own and any MLflow adds).
grep -hoE 'https?://[^[:space:]`'"'"'")<>]+' "$WORK/study.out" "$WORK/compare.out" | sed 's/[.,;:]*$//' \
    | awk '!seen[$0]++' >"$OUT/links.txt" || true
n=0
while read -r link; do
    n=$((n + 1))
    render "link-$n" "$link"
done <"$OUT/links.txt"

# The checks, on the rendered text.
status=0
python - "$OUT" "$WORK/expect.json" "$URI" <<'PY' || status=$?
import json, re, sys
from pathlib import Path
out, exp, uri = Path(sys.argv[1]), json.load(open(sys.argv[2])), sys.argv[3]
failures = []

def page(name):
    return (out / f"{name}.txt").read_text(encoding="utf-8")

def check(name, what, ok, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {name}: {what}" + (f" ({detail})" if detail else ""))
    if not ok:
        failures.append(f"{name}: {what}")

def model_training(text):
    # "Model training" pages have the Runs/Models/Model registry sidebar; GenAI pages have
    # Overview/Observability/Evaluation instead.
    return "Model registry" in text and "Observability" not in text

def tag(key, value, text):  # the run page lists tags as "key : value"
    return re.search(rf"(^|\s){re.escape(key)} : {re.escape(str(value))}(\s|$)", text) is not None

def num(v, digits=2):
    return str(float(v))[:digits + 3]  # a prefix of the raw value, which the DOM holds in full

for name in ("experiment", "study-run", "trial", "compare", "compare-run") + (
        ("compare-view",) if exp["compare_view"] else ()):
    check(name, "a Model training page", model_training(page(name)))

# the runs table with the comparison's saved view if it has one, else MLflow's default
table = "compare-view" if exp["compare_view"] else "compare"
t = page(table)
print(f"     {table}: " + (f"saved view {exp['compare_view']!r}" if exp["compare_view"] else
                          "default runs table (the experiment has no saved view)"))
for sampler, (run_name, best) in sorted(exp["summaries"].items()):
    check(table, f"summary row {run_name!r}", run_name in t)
    check(table, f"{sampler}'s best (median_best {num(best)}...) visible without expanding",
          "median_best" in t and num(best) in t)

t = page("compare-run")
check("compare-run", "verdict in the description", exp["verdict"] in t.replace("`", ""),
      exp["verdict"][:60] + "...")
check("compare-run", f"winner tag (winner : {exp['winner']})", tag("winner", exp["winner"], t))

t = page("study-run")
check("study-run", f"best trial tag (best_trial : {exp['best_trial']})", tag("best_trial", exp["best_trial"], t))
check("study-run", f"best value ({num(exp['best_value'])}...)", num(exp["best_value"]) in t)
check("study-run", "best code", exp["best_code"][:40] in t, exp["best_code"][:40] + "...")
t = page("trial")
check("trial", f"trial run {exp['trial_name']!r} with its top1 metric", exp["trial_name"] in t and "top1" in t)

links = [l for l in (out / "links.txt").read_text().split("\n") if l]
check("links", f"{len(links)} printed", len(links) >= 2, "study and compare each print one")
for i, link in enumerate(links, 1):
    t = page(f"link-{i}")
    check(f"link-{i}", f"{link} is on {uri}", link.startswith(uri + "/"))
    lost = "page not found" in t.lower() or "404" in t.split("\n", 1)[1][:200]
    check(f"link-{i}", "opens a Model training page", model_training(t) and not lost,
          "GenAI page" if not model_training(t) else ("not found" if lost else ""))

if failures:
    print(f"mlflow-screenshots: FAILED {len(failures)} check(s): " + "; ".join(failures), file=sys.stderr)
    sys.exit(1)
print("mlflow-screenshots: all checks passed")
PY
echo "done in $((SECONDS - START)) s; pages under $OUT"
exit $status
