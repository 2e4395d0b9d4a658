"""study.secrets.redact: a URL as printed, logged, tagged or written keeps its user, host,
port and database but never its password, however the password is spelled; URLs as a user
types them, raw and percent-encoded."""

from __future__ import annotations

import re
import subprocess
import sys
from urllib.parse import quote

import pytest
from sqlalchemy.engine import make_url

from helpers import REPO
from study.secrets import redact, redact_text, redact_words

# One password per character that ends the user part in some parser, each between two
# markers that must not appear either (a password cut in two must not leave its tail).
SPECIAL = ["/", "?", "#", "@", ":", "%", "ä", "€"]
PASSWORDS = {c: f"Front7{c}Back9" for c in SPECIAL}
PASSWORDS["all"] = "Aa1/Bb2?Cc3#Dd4@Ee5:Ff6%Gg7äHh8€Ii9"
DATABASE_SCHEMES = ["postgresql", "postgresql+psycopg", "mysql", "mysql+pymysql"]


def spellings(password: str) -> list[str]:
    """The password as it may appear: raw, percent-encoded (both ways urllib quotes), and
    each piece of it between special characters."""
    pieces = re.split("[" + re.escape("".join(SPECIAL)) + "]", password)
    return [password, quote(password, safe=""), quote(password), *pieces]


def assert_hidden(out: str, password: str) -> None:
    for text in spellings(password):
        assert text not in out, f"{text!r} of the password is in {out!r}"


@pytest.mark.parametrize("scheme", DATABASE_SCHEMES)
@pytest.mark.parametrize("which", list(PASSWORDS))
def test_a_raw_password_leaves_a_database_url(scheme, which):
    password = PASSWORDS[which]
    out = redact(f"{scheme}://fsvae:{password}@db.internal:5432/mlflow")
    assert out == f"{scheme}://fsvae@db.internal:5432/mlflow"
    assert_hidden(out, password)


@pytest.mark.parametrize("scheme", DATABASE_SCHEMES)
@pytest.mark.parametrize("which", list(PASSWORDS))
def test_a_percent_encoded_password_leaves_a_database_url(scheme, which):
    password = PASSWORDS[which]
    url = f"{scheme}://fsvae:{quote(password, safe='')}@db.internal:5432/mlflow"
    assert make_url(url).password == password  # what SQLAlchemy connects with
    out = redact(url)
    assert out == f"{scheme}://fsvae@db.internal:5432/mlflow"
    assert_hidden(out, password)


@pytest.mark.parametrize("scheme", ["http", "https", "s3"])
@pytest.mark.parametrize("which", list(PASSWORDS))
def test_a_password_leaves_an_http_or_s3_url_raw_or_encoded(scheme, which):
    password = PASSWORDS[which]
    for typed in (password, quote(password, safe="")):
        out = redact(f"{scheme}://fsvae:{typed}@mlflow.internal:5000/path?x=1")
        assert out == f"{scheme}://fsvae@mlflow.internal:5000/path?x=1"
        assert_hidden(out, password)


def test_a_user_without_a_password_is_kept_as_typed():
    for url in (
        "postgresql://fsvae@db:5432/mlflow",
        "https://token@mlflow.internal",
        "mysql://me%40corp@db/x",
    ):
        assert redact(url) == url


def test_sqlalchemy_finds_no_password_in_a_redacted_database_url():
    for which, password in PASSWORDS.items():
        for scheme in DATABASE_SCHEMES + ["sqlite"]:
            for typed in (password, quote(password, safe="")):
                out = redact(f"{scheme}://fsvae:{typed}@db/x?sslmode=require")
                assert make_url(out).password is None, (which, scheme, out)
                assert make_url(out).query == {"sslmode": "require"}


def test_a_user_that_sqlalchemy_reads_with_a_question_mark_loses_its_password_too():
    # SQLAlchemy takes "us?er" for the user and "Hidden42" for its password
    assert make_url("postgresql://us?er:Hidden42@db/x").password == "Hidden42"
    out = redact("postgresql://us?er:Hidden42@db/x")
    assert "Hidden42" not in out and make_url(out).password is None
    assert make_url(out).username == "us?er" and make_url(out).host == "db"


def test_a_url_without_a_password_reads_as_the_same_url_with_one():
    """A study recorded with the password in its URL is found again by the URL without it
    (and the other way round): both redact to the same string."""
    bare = "postgresql+psycopg://fsvae@db.internal:5432/mlflow?sslmode=require"
    for password in PASSWORDS.values():
        with_it = bare.replace("fsvae@", f"fsvae:{password}@")
        assert redact(with_it) == redact(bare) == bare


def test_redacting_twice_changes_nothing_more():
    urls = [
        f"{s}://fsvae:{p}@host:1/db?a=b&secret_key=S&c=d"
        for s in DATABASE_SCHEMES + ["http", "s3"]
        for p in PASSWORDS.values()
    ]
    for url in urls:
        assert redact(redact(url)) == redact(url)


def test_sqlite_urls_are_kept_as_typed():
    for url in (
        "sqlite:////abs/studies/mlflow.db",
        "sqlite:///relative.db",
        "sqlite:///:memory:",
        "sqlite://",
        "sqlite:////abs/a@b/mlflow.db",
        "sqlite:////abs/a:b@c/mlflow.db",
        "sqlite:////abs/x.db?mode=ro",
    ):
        assert redact(url) == url


def test_secret_query_options_are_dropped_and_the_others_kept_as_typed():
    assert (
        redact(
            "s3://bucket/studies?endpoint_override=http://127.0.0.1:9000&scheme=http"
            "&access_key=AK&secret_key=S%2Fk&session_token=T"
        )
        == "s3://bucket/studies?endpoint_override=http://127.0.0.1:9000&scheme=http"
    )
    assert (
        redact("postgresql://fsvae@db/x?password=Hidden42&sslmode=require")
        == "postgresql://fsvae@db/x?sslmode=require"
    )
    assert redact("https://host/x?Token=Hidden42") == "https://host/x"
    assert redact("s3://bucket/p?region=eu-west-1") == "s3://bucket/p?region=eu-west-1"


def test_a_url_given_as_an_option_loses_its_password():
    out = redact("s3://bucket?endpoint_override=http://minio:Hidden42@127.0.0.1:9000")
    assert out == "s3://bucket?endpoint_override=http://minio@127.0.0.1:9000"


def test_what_is_not_a_url_is_left_alone():
    for text in (None, "", "fsvae-studies", "/abs/path:with@signs", "C:\\data"):
        assert redact(text) == text


def test_a_command_line_loses_every_password():
    words = [
        "fsvae-study",
        "run",
        "--tracking-uri",
        "postgresql://u:Aa1/Bb2?Cc3@db/m",
        "--optuna-storage=postgresql://u:Dd4#Ee5@Ff6@db/o",
        "--name",
        "x:y@z",
        "--storage",
        "s3://b/p?secret_key=Gg7",
    ]
    assert redact_words(words) == [
        "fsvae-study",
        "run",
        "--tracking-uri",
        "postgresql://u@db/m",
        "--optuna-storage=postgresql://u@db/o",
        "--name",
        "x:y@z",
        "--storage",
        "s3://b/p",
    ]


def test_a_message_loses_the_password_of_every_url_in_it():
    message = (
        "API request to http://fsvae:Aa1/Bb2@Cc3@mlflow:5000/api/2.0/mlflow/runs/get "
        "failed with exception Max retries; the store 'postgresql://u:Dd4%40Ee5@db/x'"
        " is away"
    )
    assert redact_text(message) == (
        "API request to http://fsvae@mlflow:5000/api/2.0/mlflow/runs/get failed with "
        "exception Max retries; the store 'postgresql://u@db/x' is away"
    )


def test_the_module_needs_neither_ray_nor_mlflow_nor_optuna():
    """Loaded alone from its file: printing a URL starts nothing heavy."""
    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('s', 'study/secrets.py')\n"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
        "m.redact('postgresql://u:p@h/d'); m.redact('https://u:p@h')\n"
        "print(sorted(n for n in ('ray', 'mlflow', 'optuna') if n in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
