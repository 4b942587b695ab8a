"""Keeping storage passwords out of every message: :func:`redact`, the one redaction function.

Every error, log line, warning, MLflow tag and report that can hold a storage URL passes
through :func:`redact` (the CLI's error printer, the worker's log lines, the storage
errors). It masks a password two ways, so that no URL shape leaks one:

* by shape: in any word of the form ``[SCHEME:][//]USER:PASSWORD@HOST...`` (with or
  without ``://``, e.g. the malformed ``postgres//user:pw@host/db``) the part between the
  first ``:`` after the user and the last ``@`` becomes ``***``;
* by value: passwords of the URLs handed to :func:`remember_url` (the storage opener and
  the CLI call it) are replaced wherever they appear, also percent-decoded, so a password
  that contains spaces, quotes or ``@`` is masked inside any text.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import unquote

__all__ = ["MASK", "error_line", "one_line", "redact", "remember_url"]

MASK = "***"
_SECRETS: set[str] = set()
_LOCK = threading.Lock()
# a word: no blanks or quotes that delimit a URL inside a message
_WORD = re.compile(r"""[^\s'"`<>]+""")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:?//")
_MIN_PIECE = 6  # a piece of a password between two "@" (shorter ones mask ordinary words)
_MIN_SECRET = 3  # shorter "passwords" would mask ordinary text (a port's digits, a word)


def _after_scheme(word: str, at: int) -> int:
    """Where the credentials of ``word`` start: after ``SCHEME://`` or ``SCHEME//`` when the
    word starts with one, else at 0 (a "//" inside a password is not a scheme's)."""
    match = _SCHEME.match(word, 0, at)
    return match.end() if match else 0


def _credentials(word: str) -> tuple[int, int] | None:
    """Start and end index of the password inside ``word``, or ``None``."""
    at = word.rfind("@")
    if at <= 0:
        return None
    # "scheme:user:pw@" masks "user:pw": too much is safe
    colon = word.find(":", _after_scheme(word, at), at)
    if colon < 0:
        return None
    if colon + 1 >= at:
        return None  # "user:@host": no password
    return colon + 1, at


def _mask_word(match: re.Match[str]) -> str:
    word = match.group(0)
    span = _credentials(word)
    if span is None:
        return word
    return word[: span[0]] + MASK + word[span[1] :]


def remember_url(url: object) -> None:
    """Remember the password of ``url`` (any shape), so :func:`redact` masks it anywhere."""
    if not isinstance(url, str):
        return
    text = url.strip()
    at = text.rfind("@")
    if at <= 0:
        return
    creds = text[_after_scheme(text, at) : at]
    _, colon, password = creds.partition(":")
    if not colon:
        return
    # a parser may split "pw@rt@host" elsewhere than at the last "@": long pieces too
    pieces = {password, *(p for p in password.split("@") if len(p) >= _MIN_PIECE)}
    with _LOCK:
        for piece in pieces:
            for secret in (piece, unquote(piece)):
                if len(secret) >= _MIN_SECRET:
                    _SECRETS.add(secret)


def one_line(text: object) -> str:
    """:func:`redact` ``text``, with line breaks shown as ``\\n`` (a message is one line,
    even when it quotes a path or a driver message that holds a line break)."""
    return redact(text).replace("\r", "\\r").replace("\n", "\\n")


def redact(text: object) -> str:
    """``str(text)`` with every storage password replaced by ``***`` (see the module doc)."""
    out = _WORD.sub(_mask_word, str(text))
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    return out


def error_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` on one line (passwords masked, at most 500 characters)."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return redact(line)[:500]
