"""Masks secrets (API keys, passwords in URLs/DSNs, secret variables) in text and structures.

One :class:`Redactor` per run knows the secret *values* (variables marked
secret, ``RENDER_API_KEY``, database passwords); pattern rules catch what no
variable declared (``Bearer ...`` headers, ``user:password@`` in URLs,
``password=...`` in DSNs). The logging processor, the journal, the report and
the error boundary all pass through it.
"""

from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import urlsplit, urlunsplit

__all__ = ["MASK", "Redactor", "SECRET_NAME_PATTERN", "mask_url"]

MASK = "***"

#: Environment variable names treated as secret even when the pipeline does not say so, wherever the secret-looking
#: part stands in the name (``STRIPE_SECRET_KEY``, ``SECRET_KEY_BASE``, ``GITHUB_TOKEN_V2``); used with ``search``.
SECRET_NAME_PATTERN = re.compile(r"(?:^|_)(?:API_?)?KEY(?:_|$)|TOKEN(?:_|$)|SECRET|PASSW(?:OR)?D|CREDENTIAL"
                                 r"|DATABASE_URL|(?:^|_)DSN(?:_|$)", re.I)

_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s/]+)@")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_KV_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|api[_-]?key|token|secret)(\s*[=:]\s*)(?!\*\*\*)"
                          r"(\"[^\"]*\"|'[^']*'|[^\s&,;]+)")
_RENDER_KEY = re.compile(r"\brnd_[A-Za-z0-9]{8,}\b")


def mask_url(url: str) -> str:
    """``postgresql://user:pw@host/db`` -> ``postgresql://user:***@host/db`` (query passwords too)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", url)
    netloc = parts.netloc
    if parts.password:
        userinfo, _, hostinfo = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{hostinfo}"
    query = _KV_PASSWORD.sub(lambda m: f"{m[1]}{m[2]}{MASK}", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class Redactor:
    """Replaces known secret values and secret-looking patterns with ``***``."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *values: str | None) -> None:
        """Remember more secret values (short values under 4 characters are ignored: too many false hits)."""
        changed = False
        for value in values:
            if value and len(value) >= 4 and value not in self._secrets:
                self._secrets.add(value)
                changed = True
                # a URL's password is a secret of its own
                try:
                    pw = urlsplit(value).password
                except ValueError:
                    pw = None
                if pw and len(pw) >= 4:
                    self._secrets.add(pw)
        if changed:
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def add_from_env(self, env: dict[str, str] | Any, names: Iterable[str] = ()) -> None:
        """Add the values of ``names`` and of every variable whose name looks secret."""
        wanted = set(names)
        for name, value in env.items():
            if name in wanted or SECRET_NAME_PATTERN.search(name):
                self.add(value)

    def text(self, value: str) -> str:
        if self._pattern is not None:
            value = self._pattern.sub(MASK, value)
        value = _URL_PASSWORD.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", value)
        value = _BEARER.sub(lambda m: f"{m[1]}{MASK}", value)
        value = _RENDER_KEY.sub(MASK, value)
        return _KV_PASSWORD.sub(lambda m: f"{m[1]}{m[2]}{MASK}", value)

    def __call__(self, value: Any) -> Any:
        """Redact strings inside any JSON-like structure (dicts, lists, tuples)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self(v) for v in value)
        return value
