"""The one redaction: a URL, a command line or a message as anything printed, logged,
tagged or written keeps it, without a password or secret option.

The rule (docs/cluster.md#3-the-record-postgresql-for-both-mlflow-and-optuna):

- The password of `user:password@` is dropped, the user kept:
  `postgresql://fsvae:s3cret@db/mlflow` -> `postgresql://fsvae@db/mlflow`. Dropped, not
  shown as SQLAlchemy's `***`: a recorded URL is opened again (`resume`; `analyze` opens
  the Optuna store the parent run names), and the password then comes from where the
  clients read it: ~/.pgpass or PGPASSWORD (libpq), MLFLOW_TRACKING_PASSWORD (an MLflow
  server).
- Query options that carry a secret (SECRET_QUERY_KEYS: an s3:// storage's `secret_key`,
  a database's `?password=`) are dropped; a URL given as an option's value is redacted.
- Everything else is kept as typed (`sqlite:////abs/path` keeps its four slashes), so a
  URL redacted twice, or typed without its password, reads the same.

The password is found alike for every scheme, in the URL as typed, raw or percent-encoded:
from the first ':' after `://` (the user before it holds no '/', '?' or '#') to the LAST
'@'. So a raw '/', '?', '#', '@', ':' or '%' in it goes with it, where urllib's `urlsplit`
ends the user part at the first '/', '?' or '#' and SQLAlchemy's parser at the first '@'.
A database URL (a dialect SQLAlchemy ships: postgresql+psycopg://, mysql://, sqlite://,
...) is then read by SQLAlchemy's `make_url`, the parser its engines connect with: if that
still finds a password or a secret option, SQLAlchemy renders the URL without them.

The price of the last '@': a URL with no password whose path or query holds an '@' after
a `host:port` loses what lies between that ':' and that '@' (more than a password, never
less).

    >>> redact("postgresql+psycopg://fsvae:p/ss@w#rd@db.internal:5432/mlflow")
    'postgresql+psycopg://fsvae@db.internal:5432/mlflow'
    >>> redact("s3://bucket/studies?endpoint_override=minio:9000&secret_key=abc")
    's3://bucket/studies?endpoint_override=minio:9000'
"""

from __future__ import annotations

import re
from typing import overload
from urllib.parse import unquote_plus

SECRET_QUERY_KEYS = {
    "password",
    "secret_key",
    "secret_access_key",
    "session_token",
    "access_key",
    "token",
}
# The dialects SQLAlchemy ships (https://docs.sqlalchemy.org/en/20/dialects/): a URL of
# one of these, `+driver` or not, is a database URL.
DATABASES = {"postgresql", "mysql", "mariadb", "sqlite", "mssql", "oracle"}
URL_WORD = re.compile(r"\S+://\S*")  # a URL in free text: the word around its `://`


@overload
def redact(url: str) -> str: ...
@overload
def redact(url: None) -> None: ...
def redact(url: str | None) -> str | None:
    """`url` without its password or secret query options (the rule above); a string that
    is not a URL (no `://`) as it is."""
    if not url or "://" not in url:
        return url
    out = _without_options(_without_password(url))
    scheme = url.split("://", 1)[0]
    if scheme.split("+", 1)[0].lower() in DATABASES:
        out = _as_sqlalchemy_reads_it(out)
    return out


def redact_words(words: list[str]) -> list[str]:
    """A command line with every URL redacted (also `--flag=URL`)."""
    out = []
    for w in words:
        flag, eq, value = w.partition("=")
        if eq and flag.startswith("-") and "://" in value:
            out.append(f"{flag}={redact(value)}")
        else:
            out.append(redact(w) if "://" in w else w)
    return out


def redact_text(text: str) -> str:
    """Free text with every URL in it redacted: a library's error message (MLflow's names
    the URL it requested, user part and all) before it is printed or tagged."""
    return URL_WORD.sub(lambda m: redact(m.group()), text)


def _without_password(url: str) -> str:
    """The URL less the text from the first ':' after `://` to the last '@'."""
    scheme, _, rest = url.partition("://")
    colon, at = rest.find(":"), rest.rfind("@")
    if colon < 0 or at < colon or any(c in rest[:colon] for c in "/?#"):
        return url
    return f"{scheme}://{rest[:colon]}{rest[at:]}"


def _without_options(url: str) -> str:
    """The URL less its secret query options, the others kept as typed."""
    head, mark, query = url.partition("?")
    if not mark:
        return url
    query, hash_, fragment = query.partition("#")
    pairs, kept = query.split("&"), []
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if unquote_plus(key).strip().lower() in SECRET_QUERY_KEYS:
            continue
        kept.append(f"{key}{eq}{redact(value)}" if "://" in value else pair)
    if kept == pairs:
        return url
    return head + (f"?{'&'.join(kept)}" if kept else "") + hash_ + fragment


def _as_sqlalchemy_reads_it(url: str) -> str:
    """The database URL as it is when SQLAlchemy finds no password or secret option in
    it; else rendered by SQLAlchemy without them."""
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy can open either
        return url
    query = {k: v for k, v in parsed.query.items() if k.lower() not in SECRET_QUERY_KEYS}
    if parsed.password is None and len(query) == len(parsed.query):
        return url
    return URL.create(
        parsed.drivername, parsed.username, None, parsed.host, parsed.port, parsed.database, query
    ).render_as_string(hide_password=False)
