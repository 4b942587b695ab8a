"""Provenance of a comparison (versions, git commit, calls.json) and the
``<out>/compare.lock`` that keeps one ``compare`` per folder."""

from __future__ import annotations

import contextlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncp_hpo._numerics import environment
from ncp_hpo.exceptions import CompareError

if TYPE_CHECKING:
    from ncp_hpo.experiments.compare._runner import ComparisonResult


def environment_info() -> dict[str, str]:
    env = environment()
    env.update(git_provenance())
    return env


def git_provenance() -> dict[str, str]:
    """The commit of the ``ncp_hpo`` checkout that ran (``+dirty`` when files under
    ``ncp_hpo/`` differ from it); empty outside a git checkout."""
    import subprocess

    pkg = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(pkg), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "-C", str(pkg), "status", "--porcelain", "--", "."],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git": sha + ("+dirty" if dirty else "")} if sha else {}


class OutLock:
    """``<out>/compare.lock`` holding this pid; a lock of a dead process is taken over."""

    def __init__(self, out: Path) -> None:
        self.path = out / "compare.lock"
        self.held = False

    def __enter__(self) -> OutLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pid = _read_pid(self.path)
                if pid is not None and pid != os.getpid() and _alive(pid):
                    raise CompareError(
                        f"another compare (pid {pid}) is using {self.path.parent}; "
                        "wait for it or use another --out"
                    ) from None
                self.path.unlink(missing_ok=True)
                continue
            except OSError as exc:  # e.g. a read-only folder: say so, not "compare.lock"
                raise CompareError(
                    f"cannot write to the output folder {self.path.parent} "
                    f"({exc.strerror or exc}); --out must be a writable folder"
                ) from None
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self.held = True
            return self
        raise CompareError(f"could not lock {self.path}")  # pragma: no cover

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if not self.held:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError as err:
            if exc_type is not None:
                return  # the error in flight says what went wrong (e.g. the folder's mode)
            raise CompareError(
                f"the output folder {self.path.parent} is no longer writable "
                f"({err.strerror or err}): the results are written but {self.path.name} "
                "stays; delete it once the folder is writable again"
            ) from None


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


def record_call(out: Path, result: ComparisonResult, trials_run: int) -> list[dict[str, Any]]:
    """Append this call to ``<out>/calls.json`` (the wall time of every call, so a rerun that
    only rewrites the reports keeps the time the studies took) and return all calls."""
    path = out / "calls.json"
    calls: list[dict[str, Any]] = []
    if path.is_file():
        with contextlib.suppress(ValueError, OSError):
            calls = list(json.loads(path.read_text()))
    calls.append(
        {
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "elapsed_s": round(result.elapsed_s, 1),
            "run_seconds": round(result.run_seconds, 1),
            "jobs": result.config.jobs,
            "trials_to_run": trials_run,
            "studies": dict(result.studies),
            "samplers": list(result.config.samplers),
            "trials": result.config.trials,
            "seeds": result.config.seeds,
            "git": git_provenance().get("git"),
        }
    )
    path.write_text(json.dumps(calls, indent=1) + "\n")
    return calls
