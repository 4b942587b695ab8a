"""Planted regressions: each reliability test of issue 26 must fail when its fix is undone.

Each entry of :data:`MUTATIONS` is one small, realistic regression: a file, an exact piece
of its text, what replaces it, the pytest node ids that must catch it and one line saying
what breaks. For every selected entry the script

1. refuses to start when a target file has uncommitted changes (``git status``): the
   original is restored from the bytes read before the change, and a file someone is
   editing must not be overwritten with an old copy;
2. checks that the old text occurs exactly once (a stale entry fails loudly instead of
   passing) and that the changed file still compiles (a syntax error would be "caught"
   by every test);
3. writes the change in place, runs ``python -m pytest -q -x -p no:cacheprovider <node
   ids>`` in its own process group with a timeout (``PYTHONDONTWRITEBYTECODE=1``: no
   bytecode of the mutant is cached), and writes the original bytes back from memory in a
   ``finally`` (also on Ctrl-C, SIGTERM or a timeout; never through git);
4. reports ``caught`` (pytest exit 1: a test failed), ``MISSED`` (exit 0: every test
   passed with the regression in place), ``skipped`` (every selected test skipped, e.g.
   PostgreSQL not configured: a skipped test catches nothing) or ``error`` (anything
   else: a timeout, a collection error, no test collected), with seconds. With
   ``--baseline`` the tests first run on the unchanged file and must pass (else
   ``error``), so that a catch is the regression's doing.

``-x`` ends a run at its first failing test; each entry lists its tests most telling
first, and the report names the test that failed. The tests that need PostgreSQL skip
without ``NCP_HPO_TEST_POSTGRES`` (and ``NCP_HPO_TEST_PG_CTL`` for the chaos test):
``source .ci/postgres.sh`` in the same shell first. While an entry runs its file holds the
regression: do not run other tests from this checkout meanwhile.

Exit status: 0 when every selected entry was caught, 1 when any was missed, skipped or
ended in an error, 2 when the script refused to start.

    python benchmarks/mutation_check.py [--only NAME,...] [--list] [--baseline] [--timeout S]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PG = "PostgreSQL (source .ci/postgres.sh: NCP_HPO_TEST_POSTGRES"
NEEDS_PG = f"{PG})"
NEEDS_PG_CTL = f"{PG}, NCP_HPO_TEST_PG_CTL)"
FIRST_BEAT = "tests/runtime/test_first_beat.py::"
KILLED_BEFORE_BEAT = (
    f"{FIRST_BEAT}test_trial_of_a_process_killed_before_its_first_beat_is_failed_and_rerun"
)
HEARTBEAT = "tests/runtime/test_heartbeat.py::"
CHAOS_OUTAGE = "tests/runtime/test_chaos.py::test_outage_longer_than_grace_fails_no_healthy_trial"
CREDENTIALS = "tests/tracking/test_connect.py::"
JOURNAL = "tests/runtime/test_journal.py::"


@dataclass(frozen=True)
class Mutation:
    """One planted regression.

    Attributes:
        name: what ``--only`` selects it by.
        item: the fix of issue 26 it undoes (``a`` .. ``g``, as in the record).
        path: the file, relative to the repository root.
        old: text that occurs exactly once in the file.
        new: what replaces it.
        tests: pytest node ids, run in this order; one failing is a catch.
        description: what breaks, in one line.
        needs: what the tests need beyond this checkout (shown when they all skip).
    """

    name: str
    item: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    description: str
    needs: str = ""


MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "never-beat-query",
        "a",
        "ncp_hpo/runtime/_heartbeat.py",
        '        ago that never recorded a heartbeat (Optuna\'s own check skips them)."""\n',
        '        ago that never recorded a heartbeat (Optuna\'s own check skips them)."""\n'
        "        return []  # planted\n",
        (f"{KILLED_BEFORE_BEAT}[sqlite]", f"{KILLED_BEFORE_BEAT}[postgres]"),
        "SQL storages: the never-beat query returns no trial (a trial whose worker died "
        "before its first beat stays RUNNING)",
    ),
    Mutation(
        "never-beat-journal",
        "a",
        "ncp_hpo/runtime/_storage.py",
        "                started = mark_age(t.system_attrs, now)"
        "  # never beat: its age, if marked\n",
        "                started = None  # planted\n",
        (f"{KILLED_BEFORE_BEAT}[journal]",),
        "journal storage: a RUNNING trial without a beat of its own is never stale",
    ),
    Mutation(
        "start-mark-ignored",
        "a",
        "ncp_hpo/runtime/_liveness.py",
        "    mark = system_attrs.get(STARTED_ATTR)\n",
        "    mark = None  # planted\n",
        (f"{KILLED_BEFORE_BEAT}[postgres]", f"{KILLED_BEFORE_BEAT}[sqlite]"),
        "the start mark is never read: no storage fails a trial that never beat "
        "(PostgreSQL first, SQLite without it)",
    ),
    Mutation(
        "sigterm-leaves-trial",
        "b",
        "ncp_hpo/runtime/_trial.py",
        "            if exc is not None and self.trial_id is not None"
        " and not is_storage_error(exc):\n",
        "            if isinstance(exc, Exception) and self.trial_id is not None"
        " and not is_storage_error(exc):  # planted\n",
        (f"{FIRST_BEAT}test_worker_stopped_before_suggesting_fails_its_own_trial",),
        "a worker stopped by SIGTERM (KeyboardInterrupt) leaves its own trial RUNNING",
    ),
    Mutation(
        "beat-survives-os-errors-only",
        "c",
        "ncp_hpo/runtime/_heartbeat.py",
        "            except Exception as exc:  # the beat must outlive any storage error\n",
        "            except OSError as exc:  # planted\n",
        (
            f"{HEARTBEAT}test_heartbeat_thread_survives_storage_errors",
            f"{HEARTBEAT}test_a_live_trial_is_not_failed_after_an_outage_longer_than_grace",
        ),
        "the heartbeat thread survives only OSError: a database error (SQLite locked) ends it",
    ),
    Mutation(
        "beat-dies-on-first-failure",
        "c",
        "ncp_hpo/runtime/_heartbeat.py",
        "                self.health.failed(exc)\n                wait = min(1.0, self.interval)\n",
        "                self.health.failed(exc)\n                raise  # planted\n",
        (CHAOS_OUTAGE,),
        "the heartbeat thread dies on its first failed write (as Optuna's does); "
        "PostgreSQL stopped 6 s, grace 3 s",
        NEEDS_PG_CTL,
    ),
    Mutation(
        "query-secrets-shown",
        "d",
        "ncp_hpo/_secrets.py",
        '_PARAM = re.compile(r"(?:^|(?<=[?&;]))(?=([^=&;?#]+)=([^&]*))")\n',
        '_PARAM = re.compile(r"(?:^)(?=([^=&;?#]+)=([^&]*))")  # planted\n',
        (
            "tests/test_fuzz_storage.py::test_fuzz_storage_inputs",
            f"{CREDENTIALS}test_redact_masks_query_string_and_quoted_secrets",
        ),
        "secret KEY=VALUE after '?', '&' or ';' (a query string) is neither masked nor remembered",
    ),
    Mutation(
        "health-check-raw-netloc",
        "d",
        "ncp_hpo/tracking/_connect.py",
        '    request = urllib.request.Request(f"{parts.scheme}://{netloc}{path}")\n',
        '    request = urllib.request.Request(f"{parts.scheme}://{urlsplit(uri).netloc}{path}")'
        "  # planted\n",
        (
            "tests/test_fuzz_secrets.py::test_fuzz_secrets_never_shown_nor_looked_up",
            f"{CREDENTIALS}test_health_check_sends_credentials_in_a_header_not_a_host_name",
        ),
        "the MLflow health check asks the URI's raw netloc: USER:PASSWORD@HOST goes to a "
        "name lookup",
    ),
    Mutation(
        "torn-tail-not-cut",
        "e",
        "ncp_hpo/runtime/_journal.py",
        "            f.truncate(tail.offset)\n",
        "            pass  # planted\n",
        (
            f"{JOURNAL}test_a_worker_joins_a_journal_whose_last_record_was_cut_off",
            f"{JOURNAL}test_cut_off_last_records_are_set_aside",
        ),
        "a journal's cut-off last record is copied aside but left in place (the next append "
        "lands on its line)",
    ),
    Mutation(
        "compare-resume-no-replay",
        "f",
        "ncp_hpo/experiments/compare/_task.py",
        "    _resume_state(sampler, study)\n",
        "    pass  # planted\n",
        ("tests/experiments/test_compare.py::test_resumed_compare_matches_an_uninterrupted_one",),
        "compare: a resumed study's sampler is not replayed (it restarts at its seed)",
    ),
    Mutation(
        "study-resume-no-replay",
        "f",
        "ncp_hpo/runtime/_study.py",
        "        message = replay_sampler(study.sampler, study).message(config.name)\n",
        "        message = None  # planted\n",
        ("tests/cli/test_train.py::test_study_resumed_matches_an_uninterrupted_one",),
        "study: a resumed study's sampler is not replayed (it restarts at its seed)",
    ),
    Mutation(
        "ctrl-c-ignored",
        "g",
        "ncp_hpo/experiments/compare/_studies.py",
        "    if _STOP_FLAG:\n        raise KeyboardInterrupt\n    _STOP_FLAG = True\n",
        "    if _STOP_FLAG:\n        raise KeyboardInterrupt\n    pass  # planted\n",
        (
            "tests/experiments/test_compare.py::"
            "test_ctrl_c_stops_every_job_at_once_without_a_traceback[2]",
        ),
        "compare --jobs 2: the SIGINT handler does not set the stop flag (Ctrl-C stops nothing)",
    ),
)


class Refused(Exception):
    """The check cannot start (a dirty or missing file, a stale mutation)."""


@dataclass(frozen=True)
class Result:
    mutation: Mutation
    status: str  # caught, MISSED, skipped, error
    detail: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status == "caught"


def changed_files(paths: list[str]) -> list[str]:
    """Those of ``paths`` that ``git status`` shows as changed (or untracked)."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted({line[3:].strip() for line in out.splitlines() if line.strip()})


def mutated_source(m: Mutation, original: bytes) -> bytes:
    """The file with ``m`` applied; :class:`Refused` unless its old text occurs exactly
    once and the result still compiles."""
    text = original.decode("utf-8")
    count = text.count(m.old)
    if count != 1:
        raise Refused(f"{m.name}: the old text occurs {count} times in {m.path} (expected 1)")
    new = text.replace(m.old, m.new)
    if m.path.endswith(".py"):
        try:
            compile(new, m.path, "exec")
        except SyntaxError as exc:
            raise Refused(f"{m.name}: the mutated {m.path} does not compile: {exc}") from None
    return new.encode("utf-8")


@contextlib.contextmanager
def applied(m: Mutation) -> Iterator[None]:
    """``m`` written into its file for the ``with`` block; the original bytes (read before)
    are written back in any case."""
    path = ROOT / m.path
    if changed_files([m.path]):
        raise Refused(f"{m.path} has uncommitted changes")
    original = path.read_bytes()
    mutant = mutated_source(m, original)
    written = time.time()
    try:
        path.write_bytes(mutant)
        yield
    finally:
        with _signals_held():
            _restore(m, path, original, mutant, written)


def _restore(m: Mutation, path: Path, original: bytes, mutant: bytes, written: float) -> None:
    # a restored file must not share the mutant's mtime second (bytecode caches compare the
    # source's mtime and size)
    time.sleep(max(0.0, 1.1 - (time.time() - written)))
    current = path.read_bytes()
    if current != mutant:  # someone edited it meanwhile: take back only the plant
        print(f"warning: {m.path} changed while the mutation was in place", file=sys.stderr)
        text = current.decode("utf-8", errors="surrogateescape")
        if text.count(m.new) == 1:
            path.write_bytes(text.replace(m.new, m.old).encode("utf-8", errors="surrogateescape"))
            return
    path.write_bytes(original)
    if path.read_bytes() != original:
        raise RuntimeError(f"{m.path} could not be restored")


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back (delivered afterwards) while the block runs, so a second
    Ctrl-C cannot cut a restore short."""
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def _counts(output: str) -> dict[str, int]:
    """pytest's final tallies (``3 passed, 1 skipped in 2.1s``)."""
    lines = [line for line in output.splitlines() if re.search(r"\bin [\d.]+s\b", line)]
    if not lines:
        return {}
    found = re.findall(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed)", lines[-1])
    counts: dict[str, int] = {}
    for n, kind in found:
        key = "error" if kind.startswith("error") else kind
        counts[key] = counts.get(key, 0) + int(n)
    return counts


def classify(m: Mutation, returncode: int | None, output: str) -> tuple[str, str]:
    """(status, detail) of a pytest run (``returncode`` None: it ran past its timeout)."""
    if returncode is None:
        return "error", "timeout"
    counts = _counts(output)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.MULTILINE)
    if returncode == 1:
        return "caught", f"by {failed[0].rpartition('::')[2]}" if failed else "a test failed"
    ran = counts.get("passed", 0) + counts.get("failed", 0) + counts.get("error", 0)
    if returncode == 0 and counts.get("skipped", 0) and ran == 0:
        reasons = re.findall(r"^SKIPPED \[\d+\] [^:]+:\d+: (.*)$", output, flags=re.MULTILINE)
        return "skipped", f"needs {m.needs}" if m.needs else (reasons[0] if reasons else "")
    if returncode == 0:
        skipped = counts.get("skipped", 0)
        return "MISSED", f"{ran} passed" + (f", {skipped} skipped" if skipped else "")
    return "error", f"pytest exit {returncode}"


def _stop(proc: subprocess.Popen[str]) -> None:
    """End pytest's process group: SIGINT first (its fixtures restart a stopped server),
    then SIGKILL."""
    for sig, wait in ((signal.SIGINT, 30.0), (signal.SIGKILL, 10.0)):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)


def run_tests(m: Mutation, timeout: float) -> tuple[int | None, str]:
    """Run ``m``'s tests; (exit status or None on a timeout, combined output)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *m.tests]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
        )
        try:
            code: int | None = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _stop(proc)
        out.seek(0)
        output = out.read()
    return code, output


def check(m: Mutation, timeout: float, verbose: bool, baseline: bool = False) -> Result:
    t0 = time.monotonic()
    if baseline:  # the tests must pass without the regression, or a catch means nothing
        code, output = run_tests(m, timeout)
        status, detail = classify(m, code, output)
        if status == "skipped":
            return Result(m, status, detail, time.monotonic() - t0)
        if status != "MISSED":
            print("\n".join(output.splitlines()[-40:]), flush=True)
            shown = status + (f": {detail}" if detail else "")
            return Result(m, "error", f"baseline {shown}", time.monotonic() - t0)
    try:
        with applied(m):
            code, output = run_tests(m, timeout)
    except Refused as exc:
        return Result(m, "error", str(exc), time.monotonic() - t0)
    status, detail = classify(m, code, output)
    if verbose or status in ("MISSED", "error"):
        print("\n".join(output.splitlines()[-40:]), flush=True)
    return Result(m, status, detail, time.monotonic() - t0)


def table(results: list[Result]) -> str:
    rows = [
        "| item | mutation | result | s | file | what breaks |",
        "|---|---|---|---:|---|---|",
    ]
    for r in results:
        shown = r.status + (f" ({r.detail})" if r.detail else "")
        rows.append(
            f"| {r.mutation.item} | `{r.mutation.name}` | {shown} | {r.seconds:.0f} | "
            f"`{r.mutation.path}` | {r.mutation.description} |"
        )
    return "\n".join(rows)


def select(only: str | None) -> list[Mutation]:
    if not only:
        return list(MUTATIONS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    known = {m.name: m for m in MUTATIONS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise Refused(f"unknown mutation(s): {', '.join(unknown)} (see --list)")
    return [known[n] for n in names]


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", metavar="NAME,...", help="run only these mutations")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds per pytest run (default: 600)"
    )
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="first run each mutation's tests on the unchanged file: they must pass",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show every pytest tail")
    args = parser.parse_args(argv)
    try:
        chosen = select(args.only)
        if args.list:
            for m in chosen:
                print(f"{m.name:<30} ({m.item}) {m.path}: {m.description}")
                for test in m.tests:
                    print(f"{'':<30}     {test}")
            return 0
        dirty = changed_files(sorted({m.path for m in chosen}))
        if dirty:
            raise Refused(f"uncommitted changes in {', '.join(dirty)}: commit them first")
        for m in chosen:
            mutated_source(m, (ROOT / m.path).read_bytes())
    except Refused as exc:
        print(f"mutation_check: refused: {exc}", file=sys.stderr)
        return 2

    from ncp_hpo._numerics import environment_line

    print(f"Environment: {environment_line()}", flush=True)
    signal.signal(signal.SIGTERM, _sigterm)
    results: list[Result] = []
    try:
        for m in chosen:
            print(f"{m.name} ({m.item}, {m.path}) ...", flush=True)
            r = check(m, args.timeout, args.verbose, args.baseline)
            results.append(r)
            shown = r.status + (f" ({r.detail})" if r.detail else "")
            print(f"  {shown}, {r.seconds:.0f} s", flush=True)
    except KeyboardInterrupt:
        print("mutation_check: interrupted; the files are restored", file=sys.stderr)
        return 130
    print()
    print(table(results))
    bad = [r for r in results if not r.ok]
    if bad:
        names = ", ".join(r.mutation.name for r in bad)
        print(f"\n{len(bad)} of {len(results)} not caught: {names}")
        return 1
    print(f"\nall {len(results)} caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
