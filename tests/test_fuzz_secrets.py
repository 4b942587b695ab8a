"""Seeded fuzzing of tracking URIs, environment variables, messages and error chains that
hold secrets (issue 26, items 2, 3 and 9): at least 10,000 inputs, each counted only after
its checks ran.

Every secret starts with ``Zq9x``: MLflow URIs with credentials (user and password,
password only, user only, percent-encoded, ``@`` and ``:`` inside, odd schemes, IPv6 hosts,
repeated query parameters, fragments), query-string and conninfo secrets (``password``,
``pwd``, ``token``, ``api_key``, ... also percent-encoded), given to the tracker directly and
through ``MLFLOW_TRACKING_URI``, quoted by error chains. No output, warning, record, link
or name lookup may hold one: ``socket.getaddrinfo`` is observed for the whole run (a lookup
of any name but loopback is refused there, so none leaves the machine), and a loopback
server that requires the credentials must be found reachable through them. The seed is
``NCP_HPO_FUZZ_SEED`` (default 15); a failure names the seed and the input.
"""

from __future__ import annotations

import os
import random
import string
import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, unquote_plus

import pytest
from _netcheck import AuthServer, auth_server, free_port, observed_lookups

from ncp_hpo import _secrets
from ncp_hpo._secrets import error_line, one_line, redact, split_userinfo
from ncp_hpo.runtime._errors import root_cause
from ncp_hpo.tracking import MLflowTracker, tracking_hint, ui_url
from ncp_hpo.tracking._connect import (
    PASSWORD_ENV,
    USER_ENV,
    client_uri,
    is_http,
    probe_health,
)

SEED = int(os.environ.get("NCP_HPO_FUZZ_SEED", "15"))
MARK = "Zq9x"
N_INPUTS = 10_000
_SAFE = string.ascii_letters + string.digits + "-_.~!$*+,;%"
_JUNK = string.ascii_letters + string.digits + string.punctuation + " \t\né☃"
LIVE_USER, LIVE_PW = "ncp fuzz", MARK + "-live p@ss:w/rd%41"
SECRET_KEYS = ["password", "passwd", "pwd", "sslpassword", "token", "access_token", "api_key",
               "apikey", "secret", "pass%77ord", "PASSWORD", "api%5Fkey"]  # fmt: skip


def _text(rng: random.Random, n: int, chars: str = _JUNK) -> str:
    return "".join(rng.choice(chars) for _ in range(rng.randint(0, n)))


def _secret(rng: random.Random, chars: str | None = None) -> str:
    return MARK + _text(rng, 10, chars or rng.choice([_SAFE, _JUNK]))


def _enc(rng: random.Random, text: str) -> str:
    """``text`` as written in a URI: raw, percent-encoded, or partly encoded."""
    how = rng.random()
    if how < 0.4:
        return quote(text, safe="")
    if how < 0.6:
        return quote(text, safe=MARK + "-._~")
    return text


def _query(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 3)):
        if rng.random() < 0.6:
            parts.append(f"{rng.choice(SECRET_KEYS)}={_enc(rng, _secret(rng, _SAFE))}")
        else:
            parts.append(rng.choice(["sslmode=require", "x=1", "a", "=", "timeout=5"]))
    if parts and rng.random() < 0.2:
        parts.append(parts[0])  # a repeated parameter
    return ("?" + "&".join(parts)) if parts else ""


def _tracking_uri(rng: random.Random, ports: tuple[int, int]) -> tuple[str, bool]:
    """A tracking URI of a random shape, and whether it must be found reachable (the live
    server, its own credentials)."""
    live, closed = ports
    path = rng.choice(["", "/", "/mlflow", "/a b"])
    tail = _query(rng) + rng.choice(["", "", "#frag", "#/experiments/1"])
    if rng.random() < 0.1:  # the live server, with the credentials it requires
        safe = rng.choice(["", MARK + "-._~", " -"])  # "@", ":", "/", "%": always encoded
        creds = f"{quote(LIVE_USER, safe=safe)}:{quote(LIVE_PW, safe=safe)}@"
        scheme = rng.choice(["http", "HTTP"])
        return f"{scheme}://{creds}127.0.0.1:{live}{rng.choice(['', '/'])}{tail}", True
    scheme = rng.choice(
        ["http", "https", "Http", "file", "sqlite", "databricks", "", _text(rng, 5)]
    )
    sep = rng.choice(["://"] * 6 + [":", "//", ":/", ":///"])
    user = rng.choice(["", "u", "ncp", _text(rng, 5, _SAFE)])
    shape = rng.random()
    if shape < 0.55:
        creds = f"{user}:{_enc(rng, _secret(rng))}@"
    elif shape < 0.7:
        creds = f":{_enc(rng, _secret(rng))}@"  # password only
    elif shape < 0.85:
        creds = f"{user}@"  # user only
    else:
        creds = ""
    host = rng.choice(["127.0.0.1", "[::1]", "localhost", "mlflow.example", "",
                       "[fe80::1%25eth0]", _text(rng, 6, _SAFE)])  # fmt: skip
    port = rng.choice(["", f":{closed}", f":{live}", ":abc", ":99999", ":0"])
    return f"{scheme}{sep}{creds}{host}{port}{path}{tail}", False


def _clean(where: str, *texts: object) -> None:
    for text in texts:
        low = str(text).lower()
        assert MARK.lower() not in low and MARK.lower() not in unquote_plus(low), (
            SEED,
            where,
            text,
        )


def _mlflow_error(uri: str) -> BaseException:
    """An error chain as MLflow and urllib3 raise it, quoting ``uri``."""
    inner = ConnectionError(f"HTTPConnectionPool(host={uri!r}, port=5000): Max retries exceeded")
    outer = RuntimeError(f"API request to {uri}/api/2.0/mlflow/runs/create failed with exception")
    outer.__cause__ = inner
    return outer


def _check_tracker(uri: str, must_reach: bool, checked: Counter[str]) -> None:
    tracker = MLflowTracker(uri, probe_timeout=5)
    _clean(uri, repr(tracker), tracker.tracking_uri, tracker.resolved_uri, ui_url(uri, "1", "r"))
    _clean(uri, tracking_hint(uri, "1"))
    if is_http(uri):
        try:
            probe_health(uri, timeout=5)
            reached = True
        except (OSError, ValueError) as exc:
            _clean(uri, exc, repr(exc))
            reached = False
        assert reached or not must_reach, (SEED, uri)
    exc = _mlflow_error(uri)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker._unavailable(f"creating the trial run: {exc!r}")
    _clean(uri, tracker.last_error, *(w.message for w in caught))
    _clean(uri, error_line(exc), root_cause(exc), one_line(exc), redact(repr(exc)))
    clean = client_uri(uri)  # what MLflow is given: no userinfo left in an http(s) URI
    assert not is_http(uri) or split_userinfo(clean) == (clean, None, None), (SEED, uri)
    for name in (USER_ENV, PASSWORD_ENV):  # where MLflow reads them: set, never shown
        os.environ.pop(name, None)
    checked["tracking URIs"] += 1


def _check_env(uri: str, checked: Counter[str]) -> None:
    """The same URI as MLflow's default (``MLFLOW_TRACKING_URI``)."""
    value = uri.replace("\x00", "")
    os.environ["MLFLOW_TRACKING_URI"] = value
    tracker = MLflowTracker()
    _clean(value, tracker.resolved_uri, repr(tracker))
    del os.environ["MLFLOW_TRACKING_URI"]
    checked["environment variables"] += 1


def _check_text(rng: random.Random, checked: Counter[str]) -> None:
    """A message holding a secret in a shape masked without remembering it."""
    secret = _secret(rng, _SAFE.replace("&", ""))
    key = rng.choice([*SECRET_KEYS, "PGPASSWORD", "MLFLOW_TRACKING_PASSWORD", "db_password"])
    shapes = [
        f"{rng.choice(['postgresql+psycopg', 'mysql', 'http', 'x'])}://u@h/db?sslmode=x&{key}={secret}",
        f"host=h {key}={secret} dbname=d",
        f"{{'{key}': '{secret}', 'host': 'h'}}",
        f'{{"{key}": "{secret}"}}',
        f"{key}={secret}",
        f"http://u:{secret}@[::1]:5000/x",
    ]
    text = f"{_text(rng, 10)} {rng.choice(shapes)} {_text(rng, 10)}"
    _clean(text, redact(text), one_line(text))
    checked["messages"] += 1


@pytest.fixture
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (USER_ENV, PASSWORD_ENV, "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)  # each restored afterwards
    yield
    _secrets._SECRETS.clear()


def _run(rng: random.Random, server: AuthServer, closed: int, hosts: list[str]) -> Counter[str]:
    """Draw :data:`N_INPUTS` inputs (a tracking URI may also be checked as an environment
    variable: one more input) and check them; each check counts its input at its end."""
    checked: Counter[str] = Counter()
    for _ in range(N_INPUTS):
        _secrets._SECRETS.clear()  # each input is masked by what its own handling remembers
        if rng.random() < 0.75:
            uri, must_reach = _tracking_uri(rng, (server.port, closed))
            _check_tracker(uri, must_reach, checked)
            if rng.random() < 0.2:
                _check_env(uri, checked)
        else:
            _check_text(rng, checked)
        _clean("name lookups", *hosts)  # no secret reached a name lookup
        hosts.clear()
    return checked


@pytest.mark.usefixtures("_isolated")
def test_fuzz_secrets_never_shown_nor_looked_up(
    record_property: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(SEED)
    with auth_server(LIVE_USER, LIVE_PW) as server, observed_lookups() as hosts:
        counts = _run(rng, server, free_port(), hosts)
    reached = sum(s.auth == f"{LIVE_USER}:{LIVE_PW}" for s in server.seen)
    out, err = capsys.readouterr()
    _clean("captured output", out, err, *(r.getMessage() for r in caplog.records))
    total = sum(counts.values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    record_property("ncp_summary", f"secrets fuzz (seed {SEED}): {total} inputs ({detail})")
    assert total >= N_INPUTS and counts["tracking URIs"] > 5_000, counts
    assert counts["messages"] > 1_000 and counts["environment variables"] > 500, counts
    assert reached > 300, reached  # the live server was reached through its credentials
