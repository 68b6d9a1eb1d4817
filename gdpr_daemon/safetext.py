"""Text that came from outside, made safe to store, log and show.

Two pure functions every output path and the API client use:

- :func:`escape_controls` shows control characters as escapes (``\\x1b``, ``\\u202e``), so
  a comment, a name or an API message can never move the cursor, recolour or rewrite a
  person's terminal, reorder a line with bidirectional overrides, or hold a NUL or a lone
  surrogate that Postgres and UTF-8 refuse.
- :func:`scrub` replaces every secret or personal value the daemon knows it sent (a
  password, a session id, a token, a record id, a rectify value) by ``[redacted]`` in
  text that came back, in the forms a server could echo it (as sent, URL-encoded,
  JSON-escaped).
- :func:`mask_url` hides the password of every URL in a text, in the user information
  (``postgresql://user:***@host``) and in the query (``?password=***``), as libpq takes
  both.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["REDACTED", "escape_controls", "json_text", "mask_url", "scrub", "secret_forms"]

REDACTED = "[redacted]"

# C0 controls (tab and newline too: a cell is one line), DEL and C1, the line and paragraph
# separators, the bidirectional marks, embeddings, overrides and isolates ("Trojan
# Source"), and UTF-16 surrogates, which only a lone surrogate from a JSON escape can be.
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with every control, bidi or surrogate character shown as an escape."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(_escape, text)


# What json.dumps(ensure_ascii=False) leaves raw but a terminal would act on: C1 controls,
# line separators, bidi controls and lone surrogates (it escapes C0 controls itself).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def json_text(dumped: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with those characters as
    ``\\uXXXX`` escapes: the same JSON once parsed, safe on a terminal."""
    if not _JSON_UNSAFE.search(dumped):
        return dumped
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)


#: A value shorter than this is replaced only where it stands alone (not inside a word or a
#: number): replacing every "42" would mangle the sentence around it.
SHORT = 4


#: Whether a text is made only of what URL-encoding (``quote_plus``) and JSON escaping leave as
#: it is: such a text (most names and ids) has one form, and goes into a form body unchanged.
is_plain = re.compile(r"[A-Za-z0-9_.~-]+").fullmatch


def secret_forms(secret: str) -> frozenset[str]:
    """The forms in which a server could echo ``secret``: as sent, URL-encoded, JSON-escaped.

    A plain name or id (most record ids) is the same in every form.
    """
    if is_plain(secret):
        return frozenset((secret,))
    return _encoded_forms(secret)


@functools.lru_cache(maxsize=256)  # the password and session ids come again and again
def _encoded_forms(secret: str) -> frozenset[str]:
    forms = {secret, quote_plus(secret), quote(secret, safe=""), json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1]}  # fmt: skip
    return frozenset(f for f in forms if f)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` (in every form of :func:`secret_forms`) redacted.

    Longer secrets first, so a secret that contains a shorter one is replaced whole.
    """
    forms = sorted({f for s in secrets if s for f in secret_forms(s)}, key=len, reverse=True)
    for form in forms:
        if form not in text:
            continue
        if len(form) >= SHORT:
            text = text.replace(form, REDACTED)
        else:
            text = re.sub(rf"(?<![0-9A-Za-z]){re.escape(form)}(?![0-9A-Za-z])", REDACTED, text)
    return text


MASK = "***"
# user:password@ in a URL's authority (the password may hold an @: up to the last one);
# password=, sslpassword= in its query (libpq takes both).
_USERINFO = re.compile(r"(?P<head>://[^:/?#@\s]*):[^/?#\s]*@")
_QUERY = re.compile(r"(?P<head>[?&](?:ssl)?password=)[^&#\s]*", re.IGNORECASE)


def mask_url(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``."""
    if "://" not in text and "password=" not in text.lower():
        return text
    text = _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", text)
    return _QUERY.sub(lambda m: f"{m.group('head')}{MASK}", text)
