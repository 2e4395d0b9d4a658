"""The SQLite files a study writes (MLflow's store, Optuna's store), made whole before any
other process can see them, and upgraded only when no other study is writing to them.

MLflow and Optuna both create their schema on first use, and two processes doing that at
once on one new file collide ("table ... already exists", "duplicate column name"); so does
a reader (an `mlflow ui`) that opens the file while a study is still creating it. Here a new
store is built under an exclusive lock in a temporary file beside the target, then linked
into place in one step (link fails if the name exists, so nothing is overwritten).

An out-of-date store (the store of an older MLflow or Optuna) is upgraded on a copy that
replaces it, so that a crash half-way leaves the old one whole. A process still writing to
the old file would lose its writes, and MLflow clients and `mlflow ui` never take this
lock: so a store is not upgraded while it holds another study whose driver is alive (a
RUNNING parent run with a live driver, study/identity/names.py; in an Optuna store, RUNNING
trials of another study's Optuna studies). The error names that study. Servers and other
databases (http://, postgresql://, ...) are left to their owners: MLflow and Optuna refuse
an old schema there and say how to upgrade it.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock, Timeout

from study.errors import StudyError

LOCK_TIMEOUT_S = 600  # an upgrade of a large store can take minutes
QUIET_S = 3.0  # a store at an old revision that has not changed this long is not being made


def sqlite_path(url: str) -> Path | None:
    """The file of a `sqlite:///path` URL (MLflow and SQLAlchemy spell it alike)."""
    if not url.startswith("sqlite:///"):
        return None
    return Path(url[len("sqlite:///") :])


def ensure_mlflow_store(tracking_uri: str, study: str | None = None) -> None:
    """An embedded MLflow store is complete and at this MLflow's schema version; `study`
    (the one starting) does not count as a writer that blocks an upgrade. Only MLflow's
    public surface is used: a client's first call creates a new store's tables, and `mlflow
    db upgrade` (https://mlflow.org/docs/latest/cli.html#mlflow-db-upgrade) upgrades an old
    one; the schema revisions are alembic's, read with alembic's own API."""

    def init(url: str) -> None:
        from mlflow.tracking import MlflowClient

        MlflowClient(url).search_experiments(max_results=1)

    def current(url: str) -> str | None:
        """The store's schema revision, None while it has none; a store an older MLflow
        made has an older one (and lacks the tables newer migrations add)."""
        import sqlalchemy
        from alembic.runtime.migration import MigrationContext

        engine = sqlalchemy.create_engine(url)
        try:
            with engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()
        finally:
            engine.dispose()

    def head() -> str:
        """The revision this MLflow's migrations end at (those `mlflow db upgrade` runs)."""
        import mlflow.store.db_migrations as migrations
        from alembic.script import ScriptDirectory

        heads = ScriptDirectory(str(Path(migrations.__file__).parent)).get_heads()
        if len(heads) != 1:
            raise StudyError(
                f"this MLflow's schema migrations end at {len(heads)} revisions "
                f"({heads}), not one: reinstall MLflow"
            )
        return heads[0]

    def upgrade(url: str) -> None:
        import subprocess
        import sys

        done = subprocess.run(
            [sys.executable, "-m", "mlflow", "db", "upgrade", url], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise StudyError(
                f"`mlflow db upgrade` failed on the MLflow store {url}: "
                f"{done.stderr.strip()[-1000:]}"
            )

    _ensure(
        tracking_uri,
        "MLflow",
        init,
        current,
        head,
        upgrade,
        lambda path: _mlflow_writers(path, study),
    )


def ensure_optuna_store(url: str, study: str | None = None) -> None:
    """An Optuna RDB store (SQLite file) is complete and at this Optuna's schema version."""
    import optuna

    def open_(u: str, create: bool):
        return optuna.storages.RDBStorage(
            u, skip_compatibility_check=True, skip_table_creation=not create
        )

    def init(u: str) -> None:
        open_(u, True).engine.dispose()

    def current(u: str) -> str | None:
        try:
            storage = open_(u, False)
        except Exception:  # no version table yet (PostgreSQL fails here already)
            return None
        try:
            return storage.get_current_version()
        except Exception:  # no version table yet: a store someone else is still creating
            return None
        finally:
            storage.engine.dispose()

    def head() -> str:
        storage = optuna.storages.RDBStorage("sqlite://")  # in memory: only for the version
        return storage.get_head_version()

    def upgrade(u: str) -> None:
        storage = open_(u, False)
        try:
            storage.upgrade()
        finally:
            storage.engine.dispose()

    _ensure(url, "Optuna", init, current, head, upgrade, lambda path: _optuna_writers(path, study))


def _mlflow_writers(path: Path, study: str | None) -> list[str]:
    """The other studies whose live drivers write to an MLflow SQLite store, read with
    SQL that every MLflow schema since 1.0 answers (runs, tags, experiments)."""
    from study.record.schema import DRIVER, HEARTBEAT, ROLE

    rows = _query(
        path,
        f"""
        SELECT r.run_uuid, e.name, r.status,
               (SELECT value FROM tags WHERE run_uuid = r.run_uuid AND key = '{DRIVER}'),
               (SELECT value FROM tags WHERE run_uuid = r.run_uuid AND key = '{HEARTBEAT}')
        FROM runs r JOIN experiments e ON e.experiment_id = r.experiment_id
        JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = '{ROLE}' AND t.value = 'study'
        WHERE r.status = 'RUNNING' AND r.lifecycle_stage = 'active'""",
    )
    out = []
    for run_id, name, status, driver, beat in rows:
        tags = {k: v for k, v in ((DRIVER, driver), (HEARTBEAT, beat)) if v is not None}
        if name != study and (driver is None or _maybe_alive(status, tags)):
            who = (
                _describe_driver(tags)
                if driver
                else "a driver of an earlier fsvae-study, which does not say whether it is alive"
            )
            out.append(f"study {name!r} (parent run {run_id}, {who})")
    return out


STALE_S = 60.0  # a heartbeat younger than this, by this machine's clock, may be a live driver's


def _maybe_alive(status: str, tags: dict) -> bool:
    """Whether a parent run may be being driven now, from its tags alone: RUNNING, and its
    driver's process runs (seen from here: the same machine, boot and pid namespace), else
    its heartbeat is younger than STALE_S by this machine's clock. For refusing an upgrade
    only, where a wrong "alive" merely postpones it: who may write a study is its lease's
    to say (study/identity/lease.py), which compares no clocks."""
    from study import processes
    from study.record.schema import DRIVER, HEARTBEAT

    try:
        driver = json.loads(tags[DRIVER])
    except (KeyError, ValueError, TypeError):
        return False
    if status != "RUNNING":
        return False
    if processes.same_namespace(driver):
        return processes.running(driver)
    try:
        beat = float(tags.get(HEARTBEAT, "0"))
    except ValueError:
        beat = 0.0
    return time.time() - beat < STALE_S


def _describe_driver(tags: dict) -> str:
    """'host gpu-1, pid 4242, last heartbeat 12 s ago' for messages."""
    from study.record.schema import DRIVER, HEARTBEAT

    try:
        driver = json.loads(tags[DRIVER])
    except (KeyError, ValueError, TypeError):
        driver = {}
    try:
        age = f", last heartbeat {time.time() - float(tags[HEARTBEAT]):.0f} s ago"
    except (KeyError, ValueError):
        age = ""
    return f"host {driver.get('host', '?')}, pid {driver.get('pid', '?')}{age}"


def _optuna_writers(path: Path, study: str | None) -> list[str]:
    rows = _query(
        path,
        """
        SELECT s.study_name, COUNT(*) FROM trials t JOIN studies s ON s.study_id = t.study_id
        WHERE t.state = 'RUNNING' GROUP BY s.study_name""",
    )
    return [
        f"Optuna study {name!r} ({n} RUNNING trials)"
        for name, n in rows
        if study is None or not (name == study or name.startswith(study + "/"))
    ]


def _query(path: Path, sql: str) -> list[tuple]:
    import sqlite3

    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.Error:  # a store too old or too odd to say: nobody known to write
        return []
    finally:
        con.close()


def _ensure(
    url: str,
    what: str,
    init: Callable[[str], None],
    current: Callable[[str], str | None],
    head: Callable[[], str],
    upgrade: Callable[[str], None],
    writers: Callable[[Path], list[str]] = lambda path: [],
) -> None:
    if url.startswith("postgresql"):
        _ensure_postgres(url, what, init, current)
    path = sqlite_path(url)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path.with_name(f".{path.name}.lock")))
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_S)
    except Timeout:
        raise StudyError(
            f"{what} store {path}: another process has held its lock "
            f"({lock.lock_file}) for {LOCK_TIMEOUT_S} s while creating or "
            f"upgrading it; if none is running, delete the lock file"
        ) from None
    try:
        if not path.exists():
            tmp = _sibling(path, "new")
            try:
                init(f"sqlite:///{tmp}")
                try:
                    os.link(tmp, path)  # atomic, and never replaces a file that appeared
                except FileExistsError:
                    pass  # made meanwhile by a process that does not take this lock
            finally:
                tmp.unlink(missing_ok=True)
        want = head()
        found = _wait_until_whole(path, what, current, want, writers)
        if found != want:
            busy = writers(path)
            if busy:
                raise StudyError(
                    f"{what} store {path} is at schema version {found} and needs an upgrade "
                    f"to {want} for this {what}, but {busy[0]} is writing to it now"
                    + (f" (and {len(busy) - 1} more)" if len(busy) > 1 else "")
                    + ": an upgrade would move the store from under it. Run this study "
                    "once that one has ended (or stop it), or with its own --storage"
                )
            tmp = _sibling(path, "upgrade")
            try:
                shutil.copy2(path, tmp)
                upgrade(f"sqlite:///{tmp}")
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
    finally:
        lock.release()


def _ensure_postgres(
    url: str, what: str, init: Callable[[str], None], current: Callable[[str], str | None]
) -> None:
    """A PostgreSQL database gets its schema once: two drivers starting on a fresh database
    at once (two machines) would both create it and collide ("duplicate key value violates
    unique constraint"). Creation runs under a PostgreSQL advisory lock, which every client
    of the server sees (https://www.postgresql.org/docs/current/explicit-locking.html)."""
    import hashlib

    import sqlalchemy

    key = int.from_bytes(
        hashlib.sha256(f"fsvae-study {what} schema".encode()).digest()[:8], "big", signed=True
    )
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                if current(url) is None:
                    init(url)
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        engine.dispose()


def _wait_until_whole(
    path: Path,
    what: str,
    current: Callable[[str], str | None],
    want: str,
    writers: Callable[[Path], list[str]],
) -> str:
    """The revision of a store that is whole: at this library's head, or at an older one
    and no longer changing. A process that does not take our lock (an `mlflow ui` or a
    client opened on a new path) may be creating it now, migration by migration (Python's
    sqlite3 commits each DDL statement at once, so its revision shows mid-way): wait until
    it is done rather than take it for an old store and upgrade it from under that process.
    "No longer changing": the revision and the file's size and time unchanged for QUIET_S.
    An old store that another study's live driver writes to is returned at once: the caller
    refuses to upgrade it, naming that study."""
    deadline = time.monotonic() + 60
    seen, since = None, time.monotonic()
    while True:
        found = current(f"sqlite:///{path}")
        if found == want:
            return found
        if found is not None and writers(path):
            return found
        stamp = (found, *_file_state(path))
        if stamp != seen:
            seen, since = stamp, time.monotonic()
        elif found is not None and time.monotonic() - since >= QUIET_S:
            return found  # an old store, whole and at rest
        if time.monotonic() > deadline:
            raise StudyError(
                f"{what} store {path} has no complete schema after 60 s (left "
                f"half-made by a crashed process, or still being written by "
                f"another?); move it aside and run again"
            )
        time.sleep(0.5)


def _file_state(path: Path) -> tuple:
    """Size and modification time of a SQLite file and of its journal, if any."""
    out: list[int | None] = []
    for p in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal")):
        try:
            st = p.stat()
            out += [st.st_size, st.st_mtime_ns]
        except OSError:
            out += [None, None]
    return tuple(out)


def _sibling(path: Path, why: str) -> Path:
    return path.with_name(f".{path.name}.{why}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
