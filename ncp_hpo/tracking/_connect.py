"""Reaching an MLflow tracking server whose URI may hold credentials.

An ``http(s)://USER:PASSWORD@HOST:PORT`` URI works, and its credentials go only where
MLflow's own settings send them:

* :func:`probe_health` parses the URI with :func:`urllib.parse.urlsplit` and asks
  ``HOST:PORT`` (never ``USER:PASSWORD@HOST``: no secret in a name lookup) for
  ``/health``, sending the credentials as a basic-auth header (kept off redirects);
* :func:`mlflow_client` gives ``MlflowClient`` the URI without its userinfo and exports the
  user name and password as ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``,
  where MLflow 3.17 reads them for every request (``mlflow.utils.credentials``), artifact
  uploads included. A URI handed to MLflow whole would also work (``requests`` turns the
  userinfo into a basic-auth header) but MLflow prints it in its "View run ... at" lines
  and error messages. The URI's credentials win over values already in the environment.
* :func:`shown_uri` is the form printed, logged and recorded: no userinfo, other secrets
  masked by :func:`ncp_hpo._secrets.redact`.
"""

from __future__ import annotations

import base64
import http.client
import os
import urllib.request
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ncp_hpo._secrets import error_line, redact, remember_url, split_userinfo

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = ["client_uri", "is_http", "mlflow_client", "probe_health", "shown_uri"]

USER_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"


def is_http(uri: str) -> bool:
    return uri.lower().startswith(("http://", "https://"))


def shown_uri(uri: str) -> str:
    """``uri`` as printed, logged and recorded: no userinfo, secrets masked."""
    return redact(split_userinfo(uri)[0])


def client_uri(uri: str) -> str:
    """``uri`` without its userinfo; the user name and password (if any) are exported to
    ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` for MLflow's client."""
    remember_url(uri)
    if not is_http(uri):
        return uri
    clean, user, password = split_userinfo(uri)
    if user:
        os.environ[USER_ENV] = user
    if password:
        os.environ[PASSWORD_ENV] = password
    return clean


def mlflow_client(uri: str | None) -> MlflowClient:
    """An ``MlflowClient`` for ``uri`` (``None``: MLflow's default), credentials as in
    :func:`client_uri`."""
    import mlflow
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=client_uri(uri or str(mlflow.get_tracking_uri())))


def probe_health(uri: str, timeout: float) -> None:
    """Raise ``OSError`` (``ValueError`` for a malformed URI) unless the ``http(s)`` server
    of ``uri`` answers ``GET /health`` with 200; other URIs pass. Messages are redacted
    ``Type: message`` lines (``http.client`` errors, e.g. a blank in the path, become
    ``OSError`` too)."""
    if not is_http(uri):
        return
    remember_url(uri)
    try:
        request = _health_request(uri)
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            if resp.status != 200:
                raise OSError(f"answered {resp.status}")
    except (OSError, http.client.HTTPException) as exc:  # URLError, HTTPError, InvalidURL
        raise OSError(redact(error_line(exc))) from None
    except ValueError as exc:
        raise ValueError(error_line(exc)) from None


def _health_request(uri: str) -> urllib.request.Request:
    """``GET SCHEME://HOST[:PORT]/PATH/health``, the URI's credentials in a basic-auth
    header (dropped on a redirect), never in the host name."""
    clean, user, password = split_userinfo(uri)
    parts = urlsplit(clean)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise ValueError(f"bad port in tracking URI {shown_uri(uri)!r}") from None
    if not host:
        raise ValueError(f"no host in tracking URI {shown_uri(uri)!r}")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    path = parts.path.rstrip("/") + "/health"
    request = urllib.request.Request(f"{parts.scheme}://{netloc}{path}")
    if user or password:
        token = base64.b64encode(f"{user or ''}:{password or ''}".encode()).decode()
        request.add_unredirected_header("Authorization", f"Basic {token}")
    return request
