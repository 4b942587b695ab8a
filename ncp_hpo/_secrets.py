"""Keeping passwords out of every message: :func:`redact`, the one redaction function.

Every error, log line, warning, MLflow tag and report that can hold a storage URL, a
tracking URI or an error chain passes through :func:`redact` (the CLI's error printer, the
worker's log lines, the storage errors, the MLflow tracker's warnings and records). It
masks a secret three ways, so that no URL shape leaks one:

* by shape, userinfo: in any word of the form ``[SCHEME:][//]USER:PASSWORD@HOST...`` (with
  or without ``://``, e.g. the malformed ``postgres//user:pw@host/db``) the part between
  the first ``:`` after the user and the last ``@`` becomes ``***``;
* by shape, parameters: the value of every ``KEY=VALUE`` that starts a word or follows
  ``?``, ``&`` or ``;`` (a query string, a libpq conninfo, an environment listing) and
  every quoted ``KEY: 'VALUE'`` / ``KEY='VALUE'`` (a dict's repr), where ``KEY``,
  percent-decoded, names a secret (``password``, ``passwd``, ``pwd``, ``sslpassword``,
  ``token``, ``access_token``, ``api_key``, ``secret``, ... see :data:`SECRET_KEY`);
* by value: the passwords and secret parameters of the URLs handed to :func:`remember_url`
  (the storage opener, the CLI and the MLflow tracker call it) are replaced wherever they
  appear, also percent-decoded, so a secret that contains spaces, quotes or ``@`` is
  masked inside any text.

:func:`split_userinfo` takes the credentials out of a URI for the code that must use them
(the MLflow tracker sends them as MLflow's own credential settings, never in a host name).
"""

from __future__ import annotations

import re
import threading
from urllib.parse import unquote, unquote_plus, urlsplit

__all__ = [
    "MASK",
    "SECRET_KEY",
    "error_line",
    "one_line",
    "redact",
    "remember_url",
    "split_userinfo",
]

MASK = "***"
_SECRETS: set[str] = set()
_LOCK = threading.Lock()
# a word: no blanks or quotes that delimit a URL inside a message
_WORD = re.compile(r"""[^\s'"`<>]+""")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:?//")
_MIN_PIECE = 6  # a piece of a password between two "@" (shorter ones mask ordinary words)
_MIN_SECRET = 3  # shorter "passwords" would mask ordinary text (a port's digits, a word)
# a parameter name that holds a secret (matched percent-decoded, any case); masking a
# harmless one (a key file's path) costs nothing
SECRET_KEY = re.compile(r"pass|pwd|secret|token|key|credential|auth|sig", re.IGNORECASE)
# KEY=VALUE at a word's start or after "?", "&" or ";"; the value runs to the next "&"
# (SQLAlchemy keeps ";" and "#" in a query value). A lookahead, so that a harmless match
# ("s=://h/?token=x") does not hide the ones inside it.
_PARAM = re.compile(r"(?:^|(?<=[?&;]))(?=([^=&;?#]+)=([^&]*))")
# 'KEY': 'VALUE' or KEY="VALUE" (a dict's repr, a quoted conninfo value)
_QUOTED = re.compile(r"""([\w%.\-]+)['"]?\s*[=:]\s*(['"])(.*?)\2""")


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


def _secret_key(key: str) -> bool:
    """Whether parameter name ``key`` (percent-encoded, maybe more than once) names a secret."""
    for _ in range(3):
        if SECRET_KEY.search(key):
            return True
        decoded = unquote_plus(key)
        if decoded == key:
            return False
        key = decoded
    return bool(SECRET_KEY.search(key))


def _mask_params(word: str) -> str:
    """``word`` with the value of every secret ``KEY=VALUE`` masked."""
    out: list[str] = []
    last = 0
    for match in _PARAM.finditer(word):
        start, end = match.span(2)
        value = match.group(2)
        if start < last or not value or value == MASK or not _secret_key(match.group(1)):
            continue  # harmless, or inside a value masked already
        out += [word[last:start], MASK]
        last = end
    return "".join([*out, word[last:]])


def _mask_quoted(match: re.Match[str]) -> str:
    if not match.group(3) or not _secret_key(match.group(1)):
        return match.group(0)
    start, end = match.span(3)
    whole = match.group(0)
    base = match.start(0)
    return whole[: start - base] + MASK + whole[end - base :]


def _mask_word(match: re.Match[str]) -> str:
    word = match.group(0)
    span = _credentials(word)
    if span is not None:
        word = word[: span[0]] + MASK + word[span[1] :]
    if "=" in word:
        word = _mask_params(word)
    return word


def _param_secrets(text: str) -> set[str]:
    """The values of secret parameters in ``text`` (a URL, a conninfo), as written."""
    return {m.group(2) for m in _PARAM.finditer(text) if m.group(2) and _secret_key(m.group(1))}


def split_userinfo(uri: str) -> tuple[str, str | None, str | None]:
    """``(uri without userinfo, user, password)`` of a ``SCHEME://[USER[:PASSWORD]@]HOST...``
    URI, user and password percent-decoded (``None`` where absent); any other string is
    returned whole. The host is what follows the authority's last ``@``, as urllib and
    urllib3 (under ``requests``) read it, so a name lookup never sees the credentials."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri, None, None
    end = len(rest)
    for stop in "/?#":
        found = rest.find(stop)
        if 0 <= found < end:
            end = found
    userinfo, at, hostport = rest[:end].rpartition("@")
    if not at:
        return uri, None, None
    user, colon, password = userinfo.partition(":")
    return (
        f"{scheme}://{hostport}{rest[end:]}",
        unquote(user),
        unquote(password) if colon else None,
    )


def remember_url(url: object) -> None:
    """Remember the password and secret parameters of ``url`` (any shape), so
    :func:`redact` masks them anywhere."""
    if not isinstance(url, str):
        return
    text = url.strip()
    pieces = _param_secrets(text)
    at = text.rfind("@")
    if at > 0:
        creds = text[_after_scheme(text, at) : at]
        _, colon, password = creds.partition(":")
        if colon:
            # a parser may split "pw@rt@host" elsewhere than at the last "@", and a file
            # path at a "/" (a journal's folder): long pieces too, and the password's start
            parts = re.split(r"[@/]", password)
            pieces |= {password, parts[0], *(p for p in parts if len(p) >= _MIN_PIECE)}
        try:  # where urllib splits it (the authority ends at the first "/", "?" or "#")
            pieces.add(urlsplit(text).password or "")
        except ValueError:
            pass
    forms = {f for piece in pieces for f in _forms(piece) if len(f) >= _MIN_SECRET}
    with _LOCK:
        _SECRETS.update(forms)


def _forms(piece: str) -> set[str]:
    """``piece`` as a message may show it: as written, percent-decoded, with its blanks
    collapsed (one-line messages) and escaped as in a ``repr``."""
    decoded = {piece, unquote(piece), unquote_plus(piece)}
    out = set(decoded)
    for d in decoded:
        out.add(" ".join(d.split()))
        out.add(repr(d)[1:-1])
    return out


def one_line(text: object) -> str:
    """:func:`redact` ``text``, with line breaks shown as ``\\n`` (a message is one line,
    even when it quotes a path or a driver message that holds a line break)."""
    return redact(text).replace("\r", "\\r").replace("\n", "\\n")


def redact(text: object) -> str:
    """``str(text)`` with every password and secret replaced by ``***`` (see the module doc)."""
    out = str(text)
    # remembered values first: masking by shape could cut a secret into pieces
    with _LOCK:
        secrets = sorted(_SECRETS, key=len, reverse=True)
    for secret in secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    if "'" in out or '"' in out:
        out = _QUOTED.sub(_mask_quoted, out)
    return _WORD.sub(_mask_word, out)


def error_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` on one line (passwords masked, at most 500 characters)."""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return redact(line)[:500]
