"""The real cause of a storage error, in one line, and whether waiting can cure it.

Optuna wraps database errors (``StorageInternalError: ... invalid data in the commit, e.g.
exceeding max length``) and SQLAlchemy wraps the driver's (``OperationalError.orig``), so
the last exception's text rarely names the cause. :func:`root_cause` walks the chain
(``__cause__``, ``__context__``, ``.orig``) down to the deepest error and names its kind:

=========================  ====================================================  ==========
kind                       recognised from (driver text or errno)                transient
=========================  ====================================================  ==========
connection refused         ``Connection refused``, ``ECONNREFUSED``              yes
server unreachable         ``timeout expired``, ``No route to host``, ...        yes
server restarting          ``database system is shutting down / starting up``,   yes
                           ``terminating connection``, ``server closed the
                           connection``, a broken or reset connection
database locked            SQLite ``database is locked``                         yes
authentication failed      ``password authentication failed``, ...               no
read-only database         SQLite ``readonly database``, PostgreSQL ``read-only``  no
disk full                  ``database or disk is full``, ``No space left``,      no
                           ``ENOSPC``
unknown host               ``could not translate host name``, ``failed to        no
                           resolve host``
bad port                   ``invalid port``, a port that is not a number         no
no such database           ``database "..." does not exist``                     no
cannot open database file  SQLite ``unable to open database file``               no
not a database             SQLite ``file is not a database``                     no
permission denied          ``permission denied``, ``EACCES``                     no
=========================  ====================================================  ==========

Other errors keep their own first line (kind ``storage error``); an unrecognised
``OperationalError``/``InterfaceError`` (a DB-API connection-level error) counts as
transient. Every text passes through :func:`ncp_hpo._secrets.redact`.
"""

from __future__ import annotations

import errno

from ncp_hpo._secrets import redact

__all__ = ["chain", "is_transient", "root_cause"]

# (kind, lower-case needles, transient); the first kind with a needle in the text wins
_KINDS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("authentication failed", ("authentication failed", "access denied for user"), False),
    ("read-only database", ("readonly database", "read-only", "read only"), False),
    ("disk full", ("disk is full", "no space left", "could not extend file"), False),
    ("bad port", ("invalid port", "port could not be cast"), False),
    (
        "unknown host",
        (
            "could not translate host",
            "failed to resolve host",
            "name or service not known",
            "nodename nor servname",
        ),
        False,
    ),
    ("no such database", ("does not exist",), False),
    ("cannot open database file", ("unable to open database file",), False),
    ("not a database", ("file is not a database", "database disk image is malformed"), False),
    ("permission denied", ("permission denied",), False),
    ("connection refused", ("connection refused",), True),
    (
        "server restarting",
        (
            "shutting down",
            "starting up",
            "terminating connection",
            "server closed the connection",
            "connection reset",
            "broken pipe",
            "connection is closed",
            "connection is lost",
            "consuming input failed",
            "no connection to the server",
            "could not receive data",
            "ssl syscall",
            "in recovery mode",
            "connection already closed",
            "lost connection",
        ),
        True,
    ),
    (
        "server unreachable",
        (
            "timeout expired",
            "timed out",
            "no route to host",
            "network is unreachable",
            "could not connect",
        ),
        True,
    ),
    ("database locked", ("database is locked",), True),
)
_ERRNO_KINDS = {
    errno.ECONNREFUSED: ("connection refused", True),
    errno.ENOSPC: ("disk full", False),
    errno.EROFS: ("read-only database", False),
    errno.EACCES: ("permission denied", False),
    errno.ECONNRESET: ("server restarting", True),
    errno.EPIPE: ("server restarting", True),
    errno.ETIMEDOUT: ("server unreachable", True),
    errno.EHOSTUNREACH: ("server unreachable", True),
}
_CONNECTION_ERRORS = ("OperationalError", "InterfaceError", "DisconnectionError")


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors behind it (``.orig``, ``__cause__``, ``__context__``), outermost
    first, each once."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < 50:
        e = todo.pop(0)
        if any(e is s for s in seen):
            continue
        seen.append(e)
        for nxt in (getattr(e, "orig", None), e.__cause__, e.__context__):
            if isinstance(nxt, BaseException):
                todo.append(nxt)
    return seen


def _text(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if text.startswith("(") and ") " in text:  # SQLAlchemy's "(module.Class) message"
        text = text.split(") ", 1)[1]
    # SQLAlchemy appends "[SQL: ...]" and a help link: not the cause
    for cut in (" [SQL:", " (Background on this error", " [parameters:"):
        text = text.split(cut, 1)[0]
    return text.strip()


def _classify(errors: list[BaseException]) -> tuple[str, bool, BaseException] | None:
    for e in reversed(errors):  # the deepest error names the cause best
        code = getattr(e, "errno", None)
        if isinstance(e, OSError) and code in _ERRNO_KINDS:
            kind, transient = _ERRNO_KINDS[code]
            return kind, transient, e
        low = _text(e).lower()
        for kind, needles, transient in _KINDS:
            if any(n in low for n in needles):
                return kind, transient, e
    return None


def root_cause(exc: BaseException) -> str:
    """One line naming the cause of a storage error: ``KIND: driver text`` (password masked)."""
    errors = chain(exc)
    found = _classify(errors)
    if found is not None:
        kind, _, e = found
        detail = _text(e) or type(e).__name__
        line = detail if detail.lower().startswith(kind) else f"{kind}: {detail}"
    else:
        deepest = next((e for e in reversed(errors) if _text(e)), errors[-1])
        line = f"{type(deepest).__name__}: {_text(deepest)}".rstrip(": ")
    return redact(line)[:400]


def is_transient(exc: BaseException) -> bool:
    """Whether waiting may cure ``exc`` (a server restarting or out of reach, a lock)."""
    errors = chain(exc)
    found = _classify(errors)
    if found is not None:
        return found[1]
    return any(type(e).__name__ in _CONNECTION_ERRORS for e in errors)
