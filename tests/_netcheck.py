"""Observers for the credential tests: every host name a lookup is asked for, and a loopback
HTTP server that requires basic auth (answering ``/health`` itself, or forwarding every
request to a real upstream server, e.g. ``mlflow server``)."""

from __future__ import annotations

import base64
import http.client
import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def free_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def observed_lookups(*, block_others: bool = True) -> Iterator[list[str]]:
    """Record every host ``socket.getaddrinfo`` is asked for (the name lookup of any HTTP
    client). Loopback names are resolved for real; with ``block_others`` any other name is
    refused (``gaierror``) without a query leaving the machine."""
    real = socket.getaddrinfo
    seen: list[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode(errors="replace") if isinstance(host, bytes) else str(host)
        seen.append(name)
        if block_others and name not in LOOPBACK:
            raise socket.gaierror(socket.EAI_NONAME, "lookup refused by the test")
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield seen
    finally:
        socket.getaddrinfo = real


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    host: str
    auth: str | None  # the decoded "user:password" of a basic-auth header


@dataclass
class AuthServer:
    """A loopback HTTP server that requires ``user:password`` (basic auth) on every path."""

    user: str
    password: str
    upstream: str | None = None  # "127.0.0.1:PORT" to forward to
    seen: list[Seen] = field(default_factory=list)
    rejected: int = 0
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ok(self, auth: str | None) -> bool:
        return auth == f"{self.user}:{self.password}"


def _handler(server: AuthServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _auth(self) -> str | None:
            value = self.headers.get("Authorization", "")
            if not value.startswith("Basic "):
                return None
            try:
                return base64.b64decode(value[6:]).decode()
            except ValueError:
                return "<undecodable>"

        def _serve(self) -> None:
            auth = self._auth()
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            server.seen.append(Seen(self.command, self.path, self.headers.get("Host", ""), auth))
            if not server.ok(auth):
                server.rejected += 1
                self._reply(401, b"unauthorized", {"WWW-Authenticate": 'Basic realm="t"'})
            elif server.upstream is None:
                self._reply(200, b"OK", {})
            else:
                self._forward(body)

        def _forward(self, body: bytes) -> None:
            assert server.upstream is not None
            conn = http.client.HTTPConnection(server.upstream, timeout=60)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "host")
            }
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            skip = ("transfer-encoding", "connection", "content-length")
            keep = {k: v for k, v in resp.getheaders() if k.lower() not in skip}
            conn.close()
            self._reply(resp.status, data, keep)

        def _reply(self, status: int, data: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    return Handler


@contextmanager
def auth_server(user: str, password: str, upstream: str | None = None) -> Iterator[AuthServer]:
    """Serve an :class:`AuthServer` on a free loopback port for the block."""
    state = AuthServer(user, password, upstream)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
