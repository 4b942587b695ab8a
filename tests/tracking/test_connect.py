"""Credentials in an MLflow tracking URI and secrets in query strings (issue 26, items 2
and 3): the health check asks the real host (a loopback server that requires basic auth)
with the credentials in a header, never in a name lookup; the tracker, its links and its
warnings never show them; the MLflow client gets them through MLflow's own settings; and
``redact`` masks query-string and quoted secrets."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from _netcheck import auth_server, observed_lookups

from ncp_hpo._secrets import redact, remember_url, split_userinfo
from ncp_hpo.tracking import MLflowTracker, tracking_hint, ui_url
from ncp_hpo.tracking._connect import PASSWORD_ENV, USER_ENV, client_uri, probe_health

PW = "Zq9x-p@ss:w/rd %41"  # "@", ":", "/", a blank and a "%": percent-encoded in a URI
USER = "ncp user"


def _uri(port: int, user: str = USER, password: str = PW) -> str:
    return f"http://{quote(user, safe='')}:{quote(password, safe='')}@127.0.0.1:{port}"


def _clean(*texts: object) -> None:
    for text in texts:
        for form in (PW, quote(PW, safe=""), "Zq9x"):
            assert form.lower() not in str(text).lower(), text


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No remembered password from another test; MLflow's credential variables restored."""
    from ncp_hpo import _secrets

    for name in (USER_ENV, PASSWORD_ENV, "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    _secrets._SECRETS.clear()
    yield
    _secrets._SECRETS.clear()


def test_health_check_sends_credentials_in_a_header_not_a_host_name() -> None:
    with auth_server(USER, PW) as server, observed_lookups() as hosts:
        probe_health(_uri(server.port), timeout=5)
    assert set(hosts) == {"127.0.0.1"}, hosts
    (seen,) = server.seen
    assert (seen.path, seen.host) == ("/health", f"127.0.0.1:{server.port}")
    assert seen.auth == f"{USER}:{PW}" and server.rejected == 0


def test_wrong_password_is_unreachable_and_never_shown() -> None:
    with auth_server(USER, "other") as server, observed_lookups() as hosts:
        tracker = MLflowTracker(_uri(server.port))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert not tracker.reachable()
    assert server.rejected == 1 and set(hosts) == {"127.0.0.1"}
    assert "401" in str(tracker.last_error)
    (warning,) = caught
    _clean(warning.message, tracker.last_error, repr(tracker), tracker.resolved_uri)


def test_tracker_links_and_records_hold_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    uri = _uri(5000) + "/mlflow?token=Zq9x-tok"
    tracker = MLflowTracker(uri)
    assert tracker.tracking_uri == tracker.resolved_uri == "http://127.0.0.1:5000/mlflow?token=***"
    _clean(repr(tracker), ui_url(uri, "1", "r"), tracking_hint(uri, "1"))
    assert ui_url(uri).startswith("http://127.0.0.1:5000/mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # MLflow's default, from the environment
    _clean(MLflowTracker().resolved_uri, repr(MLflowTracker()))
    _clean(tracking_hint(f"postgresql://u:{PW}@h/db"))  # a database as the backend store


def test_mlflow_client_gets_the_credentials_through_its_own_settings() -> None:
    from mlflow.utils.credentials import get_default_host_creds

    clean = client_uri(_uri(5000))
    assert clean == "http://127.0.0.1:5000"
    creds = get_default_host_creds(clean)  # what MLflow's REST client sends
    assert (creds.host, creds.username, creds.password) == (clean, USER, PW)


def test_split_userinfo_reads_the_host_as_urllib_does() -> None:
    from urllib.parse import urlsplit

    for uri in [_uri(1), "http://:pw@[::1]:9/x", "http://u@h", "https://a:b@c@d:1/p?q#f"]:
        clean, _, _ = split_userinfo(uri)
        assert "@" not in urlsplit(clean).netloc
        assert urlsplit(clean).hostname == urlsplit(uri).hostname
    assert split_userinfo("sqlite:///x.db") == ("sqlite:///x.db", None, None)


QUERY_CASES = {
    "postgresql+psycopg://user@host/db?password=S3CRET": "postgresql+psycopg://user@host/db?password=***",
    "postgresql://u@h/db?sslmode=require&pass%77ord=S3CRET": "postgresql://u@h/db?sslmode=require&pass%77ord=***",
    "mysql://u@h/db?passwd=S3CRET&charset=utf8": "mysql://u@h/db?passwd=***&charset=utf8",
    "x://h/?pwd=S3CRET&sslpassword=S3CRET": "x://h/?pwd=***&sslpassword=***",
    "x://h/?token=S3CRET&access_token=S3CRET": "x://h/?token=***&access_token=***",
    "x://h/?api_key=S3CRET&apikey=S3CRET&secret=S3CRET": "x://h/?api_key=***&apikey=***&secret=***",
    "x://h/?password=a&password=S3CRET": "x://h/?password=***&password=***",
    "x://h/db?password=S3CRET#frag": "x://h/db?password=***",
    "x://h/db?PASSWORD=S3CRET;x=1": "x://h/db?PASSWORD=***",
    "host=h password=S3CRET dbname=d": "host=h password=*** dbname=d",
    "env: MLFLOW_TRACKING_PASSWORD=S3CRET": "env: MLFLOW_TRACKING_PASSWORD=***",
    "{'password': 'S3 CRET', 'host': 'h'}": "{'password': '***', 'host': 'h'}",
    'password="S3 CRET" user="u"': 'password="***" user="u"',
    "x://h/db?sslmode=disable&timeout=5": "x://h/db?sslmode=disable&timeout=5",
    'password authentication failed for user "u"': 'password authentication failed for user "u"',
}


@pytest.mark.parametrize("text", list(QUERY_CASES))
def test_redact_masks_query_string_and_quoted_secrets(text: str) -> None:
    assert redact(text) == QUERY_CASES[text]


def test_query_string_secrets_are_remembered_in_every_form() -> None:
    remember_url("postgresql+psycopg://user@h/db?sslmode=x&password=Zq9x%20a+b%26c")
    for shown in ("Zq9x a b&c", "Zq9x a+b&c", "Zq9x%20a+b%26c"):
        assert redact(f"driver said: {shown!r} was refused") == "driver said: '***' was refused"
