"""No storage password in any output: malformed URLs with passwords (in the userinfo or
the query string) fed to the CLI (in process and the real entry point) and to the library;
stdout, stderr and every exception in the chain are searched for the password, plain and
percent-decoded."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ncp_hpo._secrets import redact, remember_url
from ncp_hpo.exceptions import StorageError
from ncp_hpo.runtime._errors import chain
from ncp_hpo.runtime._storage import open_storage

PW = "Pw-S3cr3t-xyz"
URLS = [
    f"postgres//user:{PW}@host/db",  # no "://"
    f"postgresql//user:{PW}@127.0.0.1:9/db",
    f"user:{PW}@host/db",
    f"postgresql+psycopg://user:{PW}@127.0.0.1:abc/db",  # non-numeric port
    f"postgresql+psycopg://user:{PW}@127.0.0.1:70000/db",
    f"postgresql+psycopg://user:{PW}@127.0.0.1:9/db",  # refused
    f"postgresql+psycopg://user:{PW}@@127.0.0.1:9/db",
    f"postgresql+psycopg://user:{PW.replace('-', '%2D')}@127.0.0.1:9/db",
    f"postgresql+psycopg://user:a@{PW}@127.0.0.1:9/db",  # '@' in the password
    f"postgresql+psycopg://:{PW}@127.0.0.1:9/db",
    f"nosuchdb://user:{PW}@host/db",
    f"mysql+nosuchdriver://user:{PW}@host/db",
    f"sqlite:///user:{PW}@/no/such/folder/x.db",
    f"journal:user:{PW}@/no/such/folder/x.log",
    f"postgresql+psycopg://user:{PW}@127.0.0.1:9/db?sslmode=bogus",
    f" postgresql+psycopg://user:{PW} spaced@127.0.0.1:9/db ",
    f"postgresql+psycopg://user@127.0.0.1:9/db?password={PW}",  # in the query string
    f"postgresql+psycopg://user@127.0.0.1:9/db?sslmode=disable&pass%77ord={PW}",
    f"nosuchdb://user@host/db?sslpassword={PW}&sslpassword={PW}",
    f"postgresql+psycopg://user@127.0.0.1:9/db?password=a@{PW}:1/x",  # '@' in the query
]


@pytest.fixture(autouse=True)
def _forget_passwords() -> Iterator[None]:
    """Each test starts with no remembered password: masking must not rely on another's."""
    from ncp_hpo import _secrets

    _secrets._SECRETS.clear()
    yield
    _secrets._SECRETS.clear()


def _clean(*texts: str) -> None:
    for text in texts:
        assert PW not in text, text
        assert PW.replace("-", "%2D") not in text, text


def _exceptions(exc: BaseException) -> list[str]:
    return [f"{e!s} {e!r}" for e in chain(exc)]


@pytest.mark.parametrize("url", URLS)
def test_library_errors_hold_no_password(url: str) -> None:
    if "psycopg" in url:
        pytest.importorskip("psycopg")
    try:
        open_storage(url)
    except (StorageError, ValueError) as exc:
        _clean(*_exceptions(exc))
        assert "\n" not in str(exc)
    else:  # pragma: no cover - none of these URLs opens
        pytest.fail(f"{redact(url)} opened")


@pytest.mark.parametrize("url", URLS)
def test_cli_errors_hold_no_password(
    url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ncp_hpo.cli import main

    if "psycopg" in url:
        pytest.importorskip("psycopg")
    base = ["worker", "--study-name", "s", "--benchmark", "nas-bench-201", "--quiet"]
    for argv, env in [
        ([*base, "--storage", url], None),
        ([*base, "--storage", url, "--verbose"], None),
        (base, url),  # from NCP_HPO_STORAGE
        ([*base, "--storage", url, "--trials", "many"], None),  # an argparse error
    ]:
        if env is not None:
            monkeypatch.setenv("NCP_HPO_STORAGE", env)
        else:
            monkeypatch.delenv("NCP_HPO_STORAGE", raising=False)
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        _clean(out, err)
        assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_real_entry_point_prints_no_password(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "ncp_hpo.cli", "worker", "--study-name", "s", "--benchmark", "x"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    env.pop("NCP_HPO_STORAGE", None)
    procs = [
        subprocess.Popen(
            [*cmd, "--storage", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for url in URLS[:4]
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        _clean(out, err)
        assert p.returncode == 2 and "Traceback" not in err, err


def test_redact_masks_every_shape() -> None:
    cases = {
        "postgresql://u:secret@h:5432/db": "postgresql://u:***@h:5432/db",
        "postgres//user:pw@host/db": "postgres//user:***@host/db",
        "u:pw@h": "u:***@h",
        "postgresql+psycopg://u:p@ss@h/db": "postgresql+psycopg://u:***@h/db",
        "error at 'mysql://a:b%40c@h/db', retry": "error at 'mysql://a:***@h/db', retry",
        "postgresql://u@h/db": "postgresql://u@h/db",
        "sqlite:///x.db": "sqlite:///x.db",
        "journal:x.log": "journal:x.log",
        "mail me at a@b.c": "mail me at a@b.c",
    }
    for text, want in cases.items():
        assert redact(text) == want, text


def test_remembered_password_is_masked_anywhere() -> None:
    odd = "p a'ss\"w0rd"
    remember_url(f"postgresql://u:{odd}@h/db")
    assert odd not in redact(f"driver said: password {odd} rejected")
    remember_url("postgresql://u:p%2Fq%40r@h/db")
    assert "p/q@r" not in redact("decoded p/q@r here") and "p%2Fq%40r" not in redact("p%2Fq%40r")


def test_worker_log_lines_hold_no_password(tmp_path: Path, shared_data_dir: Path) -> None:
    """An objective error that quotes the URL: the trial's fail_reason and log are masked."""
    import optuna

    from ncp_hpo.runtime import Worker, benchmark_objective
    from ncp_hpo.samplers import make_sampler

    url = f"postgresql+psycopg://user:{PW}@db-host/db"
    remember_url(url)
    spec = benchmark_objective("nas-bench-201", data_dir=str(shared_data_dir))

    def objective(trial: Any) -> Any:
        raise RuntimeError(f"cannot reach {url}")

    spec.objective = objective
    lines: list[str] = []
    worker = Worker(
        study_name="s",
        storage=open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat=1),
        spec=spec,
        sampler=make_sampler("random", space=spec.space, seed=0),
        budget=2,
        max_failures=2,
        log=lines.append,
    )
    summary = worker.run()
    assert summary.stopped_reason is not None
    _clean(summary.stopped_reason, summary.line(), *lines)
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 's.db'}")
    reasons = [t.user_attrs["fail_reason"] for t in study.trials]
    assert len(reasons) == 2 and all(r.startswith("objective error: RuntimeError") for r in reasons)
    _clean(*reasons)
