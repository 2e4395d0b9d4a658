"""No password reaches what `analyze` and `table` print or write, run as a user runs them
(the real command in a subprocess) on a search recorded in PostgreSQL: not the password
in --tracking-uri or --optuna-storage, typed raw or percent-encoded, nor PGPASSWORD or
MLFLOW_TRACKING_PASSWORD. Each password holds every character a URL parser trips on."""

from __future__ import annotations

import os
import secrets
from urllib.parse import quote

import numpy as np
import optuna
import pytest
from analysis_store import SearchWriter, metrics_of, random_params, val_acc_h
from mlflow.tracking import MlflowClient

from helpers import cli, env
from results import load_study
from results.analysis import analyze
from results.errors import ResultsError

SEARCH = "guarded"
TRIALS = 6


def password(separators: list[str]) -> tuple[str, list[str]]:
    """A password of random pieces joined by `separators`, and its pieces: a password cut
    in two by a parser must not leave either half behind."""
    pieces = [secrets.token_hex(5) for _ in range(len(separators) + 1)]
    return pieces[0] + "".join(c + p for c, p in zip(separators, pieces[1:])), pieces


def role_with_database(server, role: str, secret: str, databases: list[str]) -> None:
    """A login role with its password, owning `databases` (PostgreSQL 15 lets only a
    database's owner create tables in its public schema)."""
    server.client(
        "psql", "--dbname", "postgres", "-c", f"CREATE ROLE {role} LOGIN PASSWORD '{secret}'"
    )
    for db in databases:
        server.client("createdb", "--owner", role, db)


@pytest.fixture(scope="module")
def guarded(postgres, tmp_path_factory) -> dict:
    """A search `guarded` whose MLflow record is read with role `raw_typist`, whose
    password is typed raw (SQLAlchemy reads a raw password up to the first '@', so it has
    none), and whose Optuna store with role `encoder`, whose password is percent-encoded;
    PGPASSWORD and MLFLOW_TRACKING_PASSWORD hold other passwords. The parent run records
    the Optuna store without a password, as a study does."""
    root = tmp_path_factory.mktemp("guarded")
    # raw, a '%' must not precede two hex digits: SQLAlchemy would decode them
    raw, raw_pieces = password(["/", "?", "#", ":", "%ä", "€"])
    encoded, encoded_pieces = password(["/", "?", "#", "@", ":", "%", "ä", "€"])
    env_pg, env_mlflow = secrets.token_hex(12), secrets.token_hex(12)
    role_with_database(postgres, "raw_typist", raw, ["guarded_mlflow"])
    role_with_database(postgres, "encoder", encoded, ["guarded_optuna", "guarded_empty"])
    at = f"{postgres.host}:{postgres.port}"
    out = {
        "root": root,
        "tracking": f"postgresql://raw_typist:{raw}@{at}/guarded_mlflow",
        "optuna": f"postgresql://encoder:{quote(encoded, safe='')}@{at}/guarded_optuna",
        "empty": f"postgresql://encoder:{quote(encoded, safe='')}@{at}/guarded_empty",
        "shown": {
            "tracking": f"postgresql://raw_typist@{at}/guarded_mlflow",
            "optuna": f"postgresql://encoder@{at}/guarded_optuna",
            "empty": f"postgresql://encoder@{at}/guarded_empty",
        },
        "secrets": [
            raw,
            quote(raw, safe=""),
            quote(raw),
            encoded,
            quote(encoded, safe=""),
            quote(encoded),
            *raw_pieces,
            *encoded_pieces,
            env_pg,
            env_mlflow,
        ],
        "env": env(
            PGPASSWORD=env_pg,
            MLFLOW_TRACKING_PASSWORD=env_mlflow,
            MLFLOW_TRACKING_USERNAME="raw_typist",
            PGPASSFILE=os.devnull,
        ),
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    client = MlflowClient(out["tracking"])
    search = SearchWriter(client, root, SEARCH, ["val_acc_h"], optuna_url=out["optuna"])
    client.set_tag(search.record.parent, "fsvae.optuna_storage", out["shown"]["optuna"])
    rng = np.random.default_rng(0)
    for i in range(TRIALS):
        params = random_params(rng, "linear")
        search.trial(params, metrics_of(val_acc_h(params), 0.6, i))
    optuna.storages.RDBStorage(out["empty"]).engine.dispose()  # Optuna's tables, no study
    return out


def assert_no_secret(text: str | bytes, guarded: dict, where: str) -> None:
    data = text if isinstance(text, bytes) else text.encode()
    for secret in guarded["secrets"]:
        assert secret.encode() not in data, f"{secret!r} is in {where}"


def run(guarded: dict, *args: str):
    return cli(*args, environ=guarded["env"], timeout=300)


@pytest.mark.slow  # fsvae-study subprocesses
def test_analyze_and_table_print_and_write_no_password(guarded, tmp_path):
    analyzed = run(
        guarded,
        "analyze",
        "--experiment",
        SEARCH,
        "--tracking-uri",
        guarded["tracking"],
        "--optuna-storage",
        guarded["optuna"],
        "--out",
        str(tmp_path),
        "--top",
        "2",
    )
    assert analyzed.returncode == 0, analyzed.stderr
    assert "logged to run " in analyzed.stdout
    page = (tmp_path / SEARCH / "analysis.md").read_text()
    # the page still says where the record is: the URLs less their passwords
    assert f"MLflow: {guarded['shown']['tracking']}; Optuna: {guarded['shown']['optuna']}." in page
    table = run(
        guarded,
        "table",
        "--experiment",
        SEARCH,
        "--tracking-uri",
        guarded["tracking"],
        "--format",
        "csv",
        "--out",
        str(tmp_path / "t.csv"),
    )
    assert table.returncode == 0, table.stderr
    shown = run(guarded, "table", "--experiment", SEARCH, "--tracking-uri", guarded["tracking"])
    assert shown.returncode == 0 and shown.stdout.startswith(f"**{SEARCH} ("), shown.stderr
    for done in (analyzed, table, shown):
        assert_no_secret(done.stdout + done.stderr, guarded, f"the output of {done.args}")
    written = [
        p
        for folder in (tmp_path, guarded["root"] / "art")
        for p in folder.rglob("*")
        if p.is_file()
    ]
    assert any(p.name == "analysis.md" for p in written if "art" in p.parts)  # logged
    for path in written:
        assert_no_secret(path.read_bytes(), guarded, str(path))


@pytest.mark.slow  # fsvae-study subprocesses
def test_errors_name_the_store_without_its_password(guarded, tmp_path):
    unknown = run(guarded, "table", "--experiment", "nope", "--tracking-uri", guarded["tracking"])
    assert unknown.returncode == 2
    assert f"no experiment named 'nope' in {guarded['shown']['tracking']}; " in unknown.stderr
    empty = run(
        guarded,
        "analyze",
        "--experiment",
        SEARCH,
        "--tracking-uri",
        guarded["tracking"],
        "--optuna-storage",
        guarded["empty"],
        "--out",
        str(tmp_path),
    )
    assert empty.returncode == 2
    assert f"no Optuna study of search {SEARCH!r} in {guarded['shown']['empty']} " in empty.stderr
    for done in (unknown, empty):
        assert_no_secret(done.stdout + done.stderr, guarded, f"the output of {done.args}")


def test_the_python_api_errors_name_the_store_without_its_password(guarded, tmp_path):
    """The same errors raised to a notebook, which no command line redacts for it."""
    with pytest.raises(ResultsError) as unknown:
        load_study("nope", guarded["tracking"])
    with pytest.raises(ResultsError) as empty:
        analyze(
            SEARCH,
            tracking_uri=guarded["tracking"],
            optuna_storage=guarded["empty"],
            out=tmp_path,
            log=False,
        )
    assert guarded["shown"]["tracking"] in str(unknown.value)
    assert guarded["shown"]["empty"] in str(empty.value)
    for error in (unknown, empty):
        assert_no_secret(str(error.value), guarded, "the error")
