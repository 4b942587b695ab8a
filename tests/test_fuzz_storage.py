"""Seeded fuzzing of everything a worker reads before it runs a trial (>= 10,000 inputs,
each counted only once its checks ran).

Storage URLs (parsed; opened for real where that needs no network; passwords in the
userinfo and in the query string, raw and percent-encoded, repeated), storage error
chains, log text with embedded URLs, ``ncp-hpo worker`` command lines (the storage URL
also from ``NCP_HPO_STORAGE``), ``NCP_HPO_FAULTS`` rule lists, and damaged journal and
SQLite files. Every input is accepted or refused with the documented one-line error
(:class:`~ncp_hpo.exceptions.StorageError`, ``ValueError`` from the rule parser,
``ncp-hpo: error: ...`` with status 2), and no output holds the password planted in it,
nor does a name lookup: the host a database driver would look up is checked, and
``socket.getaddrinfo`` is observed (lookups of anything but loopback refused). The
generator is seeded (``NCP_HPO_FUZZ_SEED``, default 15), so a failure names the seed and
the input that reproduce it.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import string
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_plus

import pytest
from _netcheck import observed_lookups

from ncp_hpo import _secrets
from ncp_hpo._secrets import redact, remember_url
from ncp_hpo.exceptions import StorageError, StorageUnavailableError
from ncp_hpo.runtime._errors import is_transient, root_cause
from ncp_hpo.runtime._faults import parse_faults
from ncp_hpo.runtime._storage import _parse_rdb_url, open_storage

SEED = int(os.environ.get("NCP_HPO_FUZZ_SEED", "15"))
MARK = "Zq9x"  # every generated password starts with it: it must never be printed
_JUNK = string.ascii_letters + string.digits + string.punctuation + " \t\né☃\x00"
_SAFE = string.ascii_letters + string.digits + "-_.~!$&*+=,;%"


def _text(rng: random.Random, n: int, chars: str = _JUNK) -> str:
    return "".join(rng.choice(chars) for _ in range(rng.randint(0, n)))


def _password(rng: random.Random, chars: str = _JUNK) -> str:
    return MARK + _text(rng, 12, chars)


_QUERY_KEYS = ["password", "passwd", "pwd", "sslpassword", "PASSWORD", "pass%77ord"]


def _url(rng: random.Random) -> tuple[str, str]:
    """A storage URL of a random shape (and its password: in the userinfo, the query
    string, both or neither)."""
    pw = _password(rng)
    schemes = ["postgresql", "postgresql+psycopg", "postgres", "mysql+pymysql", "sqlite"]
    scheme = rng.choice([*schemes, "journal", "nosuch", "", _text(rng, 6)])
    sep = rng.choice(["://", "//", ":", ":///", "", ":/"])
    user = rng.choice(["", "u", "ncp", _text(rng, 5, _SAFE)])
    host = rng.choice(["127.0.0.1", "db-host", "", "[::1]", _text(rng, 8)])
    port = rng.choice(["", ":5432", ":abc", ":-1", ":99999", ":" + _text(rng, 4)])
    db = rng.choice(["/db", "", "/", "/" + _text(rng, 6), "/db?sslmode=x"])
    where = rng.random()
    creds = f"{user}:{pw}@" if where < 0.6 else rng.choice([f"{user}@", ""])
    if 0.6 <= where < 0.9 or where < 0.1:  # the password as a query parameter
        value = pw if rng.random() < 0.5 else quote(pw, safe="")
        param = f"{rng.choice(_QUERY_KEYS)}={value}"
        params = [param, *(["sslmode=require"] if rng.random() < 0.5 else [])]
        params += [param] if rng.random() < 0.2 else []  # repeated
        rng.shuffle(params)
        db = db.split("?")[0] + "?" + "&".join(params) + rng.choice(["", "", "#frag"])
    return f"{scheme}{sep}{creds}{host}{port}{db}", pw


def _no_mark(text: str, where: str) -> None:
    assert MARK not in text and MARK not in unquote_plus(text), (SEED, where, text)


def _clean(text: str, where: str) -> None:
    """No password, one line (a message)."""
    _no_mark(text, where)
    assert "\n" not in text.strip(), (SEED, where, text)


def _fresh() -> None:
    """Forget remembered passwords: each input is masked by what its own handling remembers
    (and redaction stays fast)."""
    _secrets._SECRETS.clear()


def _record(record_property: Any, checked: Counter[str]) -> None:
    total = sum(checked.values())
    detail = ", ".join(f"{k} {v}" for k, v in checked.items())
    record_property("ncp_summary", f"storage/CLI fuzz (seed {SEED}): {total} inputs ({detail})")
    assert total >= 10_000, checked


def _fuzz_urls(rng: random.Random, tmp: Path, n: int, checked: Counter[str]) -> None:
    """Parse every URL; open for real those that need no network (SQLite, journal)."""
    for i in range(n):
        _fresh()
        url, pw = _url(rng)
        if rng.random() < 0.1:
            url = _text(rng, 40) + (f":{pw}@" if rng.random() < 0.5 else "")
        remember_url(url)  # as the CLI and open_storage do
        _no_mark(redact(url), url)
        kind = url.strip().split(":", 1)[0]
        try:
            if kind in ("sqlite", "journal") and rng.random() < 0.2:
                local = url.replace("/db", f"/{tmp}/f{i}.db")
                remember_url(local)
                open_storage(local, heartbeat=rng.choice([None, 1]), connect_timeout=1)
            elif "://" in url and not kind.startswith(("sqlite", "journal")):
                parsed = _parse_rdb_url(url.strip(), redact(url))
                # the name a driver would look up (libpq's lookup is not Python's)
                assert MARK not in (parsed.host or ""), (SEED, url, parsed.host)
            else:
                open_storage(url, heartbeat=None, connect_timeout=1)
        except StorageError as exc:
            _clean(str(exc), url)
            assert exc.__context__ is None or MARK not in str(exc.__context__), url
        checked["urls"] += 1


class _Link(Exception):
    """One link of a made-up error chain."""


def _chain(rng: random.Random) -> BaseException:
    from optuna.exceptions import StorageInternalError
    from sqlalchemy.exc import OperationalError

    pw = _password(rng, _SAFE)
    remember_url(
        rng.choice([f"postgresql://u:{pw}@h/db", f"postgresql://u@h/db?password={quote(pw)}"])
    )
    msgs = [
        "connection refused",
        "password authentication failed for user",
        "attempt to write a readonly database",
        "database or disk is full",
        "the database system is shutting down",
        "server closed the connection unexpectedly",
        "database is locked",
        f"could not connect to postgresql://u:{pw}@h/db",
        f"could not connect to postgresql://u@h/db?sslmode=x&password={quote(pw)}",
        f"invalid connection option: host=h password={pw} dbname=d",
        f"connect() got {{'password': '{pw}', 'host': 'h'}}",
        _text(rng, 60),
    ]
    inner: BaseException = rng.choice([_Link, OSError, ValueError])(rng.choice(msgs))
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(["sa", "optuna", "plain"])
        if kind == "sa":
            outer: BaseException = OperationalError(_text(rng, 20), {}, inner)
        elif kind == "optuna":
            outer = StorageInternalError("invalid data in the commit, e.g. exceeding max length")
        else:
            outer = _Link(rng.choice(msgs))
        outer.__cause__ = inner if rng.random() < 0.5 else None
        outer.__context__ = inner
        inner = outer
    return inner


def _fuzz_argv(rng: random.Random) -> list[str]:
    opts = {
        "--trials": ["3", "0", "-2", "x", "1e3", ""],
        "--heartbeat": ["0", "1", "-1", "nan", "two"],
        "--grace": ["1", "5", "0", "inf", "-3"],
        "--retries": ["0", "2", "-1", "z"],
        "--storage-retry": ["0", "5", "-1", "nan", "inf", "1e400"],
        "--poll": ["0.5", "0", "-1", "nan"],
        "--timeout": ["1", "0", "-5", "inf"],
        "--sampler": ["ncp", "tpe", "cmaes", ""],
        "--objective": ["metric", "metric+flops", "speed"],
        "--flops-weight": ["0.5", "-1", "nan"],
        "--sampler-param": ["iterations=5", "x", "=1", "a b=2", 'p={"a": 1}'],
        "--max-failures": ["1", "0", "-1"],
        "--mode": ["exact", "table", "fast"],
        "--seed": ["1", "-1", "x"],
    }
    argv = ["worker"]
    if rng.random() < 0.95:
        argv += ["--study-name", rng.choice(["s", "", " ", _text(rng, 8)])]
    what = rng.random()
    if what < 0.7:
        argv += ["--benchmark", rng.choice(["nas-bench-201", "seg", "nope"])]
    elif what < 0.85:
        argv += ["--task", rng.choice(["cls", "det"])]
    for opt in rng.sample(list(opts), rng.randint(0, 5)):
        argv += [opt, rng.choice(opts[opt] + [_text(rng, 6)])]
    if rng.random() < 0.1:
        argv.append(rng.choice(["--bogus", "extra", "--"]))
    return argv


def _fuzz_cli(rng: random.Random, tmp: Path, n: tuple[int, int], checked: Counter[str]) -> None:
    from ncp_hpo.cli import build_parser, main

    parser = build_parser()
    for _ in range(n[0]):
        argv = _fuzz_argv(rng)
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                parser.parse_args(argv)
            except SystemExit as exc:
                assert exc.code == 2, (SEED, argv)
                lines = err.getvalue().strip().splitlines()
                # (not startswith "ncp-hpo": a URL like ":ncp@host" makes "ncp" a password)
                assert len(lines) == 1 and ": error: " in lines[0], (SEED, argv, lines)
        checked["command lines"] += 1
    for _ in range(n[1]):  # the whole command: validation, then storage (none opens)
        _fresh()
        url, _ = _url(rng)
        if "://" not in url or url.startswith(("sqlite", "journal")):
            url = f"nosuch://u:{MARK}pw@host/db"
        storage = rng.choice([url, f"sqlite:///{tmp}/none/s.db", f"journal:{tmp}/none/j.log"])
        argv = _fuzz_argv(rng)
        if rng.random() < 0.3:  # from the environment
            os.environ["NCP_HPO_STORAGE"] = storage.replace("\x00", "")
        else:
            argv += ["--storage", storage]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = int(exc.code or 0)
        os.environ.pop("NCP_HPO_STORAGE", None)
        lines = err.getvalue().strip().splitlines()
        assert code == 2 and len(lines) == 1, (SEED, argv, err.getvalue())
        _clean(out.getvalue() + err.getvalue(), repr(argv))
        checked["whole commands"] += 1


def _fuzz_log_texts(rng: random.Random, n: int, checked: Counter[str]) -> None:
    """URLs quoted in log text: masked by their shape alone where the password is in one
    (userinfo, or a query parameter, with no blank or quote), else once remembered."""
    for _ in range(n):
        _fresh()
        url, pw = _url(rng)
        text = f"{_text(rng, 10)} '{url}' {_text(rng, 10)}"
        raw = not any(c in pw for c in " \t\n'\"`<>")
        userinfo = ":" + pw + "@" in url
        plain = f"={pw}" in url
        shaped = (
            (not userinfo or (raw and "//" in url))
            and (not plain or (raw and "&" not in pw))
            and (userinfo or plain or "=" + quote(pw, safe="") in url)
        )
        if not shaped:
            remember_url(url)  # as the storage opener and the CLI do
        _no_mark(redact(text), url)
        checked["log texts"] += 1


def _fuzz_files(rng: random.Random, tmp: Path, n: int, checked: Counter[str]) -> None:
    """Damaged journal and SQLite files: read fine, or refused with the project's own
    storage errors (raised on open or on the first read), nothing else."""
    valid = tmp / "valid.log"
    import optuna

    optuna.create_study(study_name="s", storage=open_storage(f"journal:{valid}"))
    good = valid.read_bytes()
    for i in range(n):
        if rng.random() < 0.5:  # damaged copy of a real file
            data = bytearray(good)
            for _ in range(rng.randint(1, 8)):
                if data:
                    data[rng.randrange(len(data))] = rng.randrange(256)
            data = data[: rng.randint(0, len(data))]
        else:
            data = bytearray(rng.randbytes(rng.randint(0, 300)))
        is_journal = i < n // 2
        path = tmp / (f"j{i}.log" if is_journal else f"d{i}.db")
        path.write_bytes(bytes(data))
        url = f"journal:{path}" if is_journal else f"sqlite:///{path}"
        try:
            storage = open_storage(url, heartbeat=None, connect_timeout=1)
            optuna.get_all_study_summaries(storage)
        except (StorageError, StorageUnavailableError) as exc:
            _clean(str(exc), url)
        # anything else (KeyError, ValueError, a driver's error) fails the test, input named
        checked["files"] += 1


def _fuzz_faults(rng: random.Random, n: int, checked: Counter[str]) -> None:
    for _ in range(n):
        rules = ",".join(
            rng.choice(["sleep", "raise", "nan", "exit", "boom", ""])
            + rng.choice(["@", "", "@@"])
            + rng.choice(["1", "*", "-1", "x", ""])
            + rng.choice(["", ":5", ":x", ":"])
            for _ in range(rng.randint(0, 3))
        )
        try:
            parse_faults(rules)
        except ValueError as exc:
            assert "\n" not in str(exc) and "NCP_HPO_FAULTS" in str(exc)
        checked["fault rules"] += 1


@pytest.fixture
def _forget_passwords() -> Iterator[None]:
    """The passwords remembered here must not mask other tests' output."""
    yield
    _secrets._SECRETS.clear()


@pytest.mark.filterwarnings("ignore")
@pytest.mark.usefixtures("_forget_passwords")
def test_fuzz_storage_inputs(
    tmp_path: Path, record_property: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # "journal:u:pw@host" is a file name relative to here
    monkeypatch.delenv("NCP_HPO_STORAGE", raising=False)  # set and removed below; restored
    rng = random.Random(SEED)
    checked: Counter[str] = Counter()
    with observed_lookups() as hosts:
        _fuzz_urls(rng, tmp_path, 3000, checked)
        for _ in range(2000):
            _fresh()
            exc = _chain(rng)
            _clean(root_cause(exc), "root_cause")
            assert isinstance(is_transient(exc), bool)
            checked["error chains"] += 1
        _fuzz_log_texts(rng, 3000, checked)
        _fuzz_cli(rng, tmp_path, (2000, 150), checked)
        _fuzz_faults(rng, 1000, checked)
        _fuzz_files(rng, tmp_path, 300, checked)
    _no_mark(" ".join(hosts), "name lookups")
    _record(record_property, checked)
