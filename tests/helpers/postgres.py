"""Runs a throwaway PostgreSQL server on loopback for tests and benchmarks.

One server = one folder under the system's temp folder holding the data directory, the
server's log and its Unix socket; `stop()` ends the server and removes the folder. Every
connection, TCP or socket, needs the password of the role `fsvae` (scram-sha-256), which
is generated per server and never put in a URL: clients get it through PGPASSWORD.

Plain Python, no fixtures, so that bench scripts import it too (the tests' session server
is conftest.py's `postgres` fixture). The server binaries come from $FSVAE_PG_BIN, else
the newest /usr/lib/postgresql/<version>/bin (Debian and Ubuntu packages), else
`pg_config --bindir`, else the folder of an `initdb` on PATH. PostgreSQL refuses to run as root
(https://www.postgresql.org/docs/current/server-start.html), so as root initdb and pg_ctl
run as the `postgres` user on a folder that user owns.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from helpers.processes import free_port

ROLE = "fsvae"
HOST = "127.0.0.1"
SERVER_USER = "postgres"  # the account that owns the server when we run as root
INSTALL_HINT = (
    "install the PostgreSQL server (Debian/Ubuntu: apt-get install postgresql) "
    "or point FSVAE_PG_BIN at the folder holding initdb and pg_ctl"
)
# A throwaway server need not survive a crash: no fsync, no full-page writes
# (https://www.postgresql.org/docs/current/non-durability.html). `durable=True` keeps
# PostgreSQL's defaults, for measurements that compare it with SQLite's fsynced commits.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
DB_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
SETTINGS_FILE = "fsvae.conf"  # in the data directory, included by postgresql.conf
START_TRIES = 3  # another process may take the free port before the server binds it


class PostgresMissing(RuntimeError):
    """The PostgreSQL server binaries are not installed (or not where we look)."""


class PostgresError(RuntimeError):
    """A PostgreSQL command failed; the message carries its output."""


def find_bin_dir() -> Path:
    """The folder holding initdb and pg_ctl; PostgresMissing names where it looked."""
    looked = []
    for where, folder in candidate_bin_dirs():
        looked.append(f"{where} ({folder})" if folder else where)
        if folder and all((Path(folder) / exe).is_file() for exe in ("initdb", "pg_ctl")):
            return Path(folder)
    raise PostgresMissing(
        "no PostgreSQL server binaries (initdb, pg_ctl) in "
        + "; ".join(looked)
        + f": {INSTALL_HINT}"
    )


def candidate_bin_dirs():
    """(where, folder) pairs in the order find_bin_dir tries them; folder may be None."""
    override = os.environ.get("FSVAE_PG_BIN")
    if override:
        yield "$FSVAE_PG_BIN", override
        return
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.name)] or [0],
    )
    yield "/usr/lib/postgresql/*/bin", str(versions[-1]) if versions else None
    yield "pg_config --bindir", pg_config_bindir()
    initdb = shutil.which("initdb")
    yield "initdb on PATH", str(Path(initdb).resolve().parent) if initdb else None


def pg_config_bindir() -> str | None:
    exe = shutil.which("pg_config")
    if exe is None:
        return None
    out = subprocess.run([exe, "--bindir"], capture_output=True, text=True)
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


@dataclass
class Postgres:
    """A running server; `url(db)` and `create_database(db)` give password-less URLs."""

    bin_dir: Path
    folder: Path
    port: int
    password: str = field(repr=False)
    host: str = HOST
    user: str = ROLE
    stopped: bool = False

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        return self.folder / "server.log"

    def url(self, database: str, scheme: str = "postgresql") -> str:
        """postgresql://fsvae@127.0.0.1:PORT/DATABASE: no password in it (see env())."""
        return f"{scheme}://{self.user}@{self.host}:{self.port}/{database}"

    def env(self) -> dict[str, str]:
        """What a client's environment needs besides the URL: the password (libpq reads
        PGPASSWORD: https://www.postgresql.org/docs/current/libpq-envars.html)."""
        return {"PGPASSWORD": self.password}

    def create_database(self, name: str) -> str:
        """Creates database `name` (lower-case letters, digits, _); returns its URL."""
        if not DB_NAME.fullmatch(name):
            raise ValueError(
                f"database name {name!r}: expected lower-case letters, digits "
                "and _ (not first), at most 63 characters"
            )
        self.client("createdb", name)
        return self.url(name)

    def client(self, program: str, *args: str) -> str:
        """Runs a client program of this installation (createdb, psql, ...) over TCP with
        the password; returns its stdout."""
        cmd = [
            str(self.bin_dir / program),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--username",
            self.user,
            *args,
        ]
        env = {**os.environ, **self.env(), "PGPASSFILE": os.devnull}
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise PostgresError(
                f"{program} {' '.join(args)} failed (exit {out.returncode}): {out.stderr.strip()}"
            )
        return out.stdout

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Stops the server at once (immediate mode: its data is thrown away) and removes
        its folder. Safe to call twice."""
        if self.stopped:
            return
        self.stopped = True
        if (self.data_dir / "postmaster.pid").exists():
            as_owner(
                [
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "immediate",
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ],
                check=False,
            )
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Postgres:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_postgres(durable: bool = False, settings: dict[str, str] | None = None) -> Postgres:
    """Initialises and starts a server on a free loopback port; returns once it accepts
    connections. `settings` are added to postgresql.conf (e.g. {"max_connections": "200"})."""
    bin_dir = find_bin_dir()
    folder = make_folder()
    server = Postgres(bin_dir=bin_dir, folder=folder, port=0, password=secrets.token_urlsafe(18))
    try:
        init_cluster(server)
        include_settings(server)
        conf = {**({} if durable else FAST_SETTINGS), **(settings or {})}
        start_on_free_port(server, conf)
        return server
    except BaseException:
        server.stop()
        raise


def make_folder() -> Path:
    """An empty folder owned by the account that runs the server. As root, under /tmp:
    pytest's own temp folders are root-only (0700), so the `postgres` user could not
    reach a folder inside them."""
    if os.geteuid() != 0:
        return Path(tempfile.mkdtemp(prefix="fsvae-pg-"))
    owner = server_account()
    folder = Path(tempfile.mkdtemp(prefix="fsvae-pg-", dir="/tmp"))
    os.chown(folder, owner.pw_uid, owner.pw_gid)
    return folder


def server_account():
    """The account initdb and pg_ctl run as when we are root."""
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresMissing(
            f"running as root, the PostgreSQL server needs an account to "
            f"run as (it refuses root), but there is no user "
            f"{SERVER_USER!r}: {INSTALL_HINT}, which creates it"
        ) from None


def as_owner(
    cmd: list[str], check: bool = True, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Runs a server command as the server's account (`postgres` when we are root)."""
    who = {}
    if os.geteuid() == 0:
        owner = server_account()
        who = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd or "/", **who
    )
    if check and out.returncode != 0:
        raise PostgresError(
            f"{Path(cmd[0]).name} failed (exit {out.returncode}): "
            f"{(out.stdout + out.stderr).strip()[-3000:]}"
        )
    return out


def init_cluster(server: Postgres) -> None:
    """initdb: superuser `fsvae` with the server's password, scram-sha-256 for every
    connection (https://www.postgresql.org/docs/current/app-initdb.html)."""
    pwfile = server.folder / "password"
    pwfile.write_text(server.password + "\n")
    if os.geteuid() == 0:
        owner = server_account()
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    pwfile.chmod(0o600)
    try:
        as_owner(
            [
                str(server.bin_dir / "initdb"),
                "-D",
                str(server.data_dir),
                "--username",
                server.user,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
    finally:
        pwfile.unlink(missing_ok=True)


def start_on_free_port(server: Postgres, settings: dict[str, str]) -> None:
    """pg_ctl start on a free port, again on another one if that port was taken meanwhile."""
    for attempt in range(START_TRIES):
        server.port = free_port()
        write_settings(server, settings)
        out = as_owner(
            [
                str(server.bin_dir / "pg_ctl"),
                "-D",
                str(server.data_dir),
                "-l",
                str(server.log_file),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=False,
        )
        if out.returncode == 0:
            return
        if "Address already in use" not in server.log_tail() or attempt == START_TRIES - 1:
            raise PostgresError(
                f"pg_ctl start failed (exit {out.returncode}): "
                f"{(out.stdout + out.stderr).strip()}\n{server.log_tail()}"
            )


def include_settings(server: Postgres) -> None:
    """postgresql.conf ends by reading SETTINGS_FILE, so its values win
    (https://www.postgresql.org/docs/current/config-setting.html)."""
    with open(server.data_dir / "postgresql.conf", "a") as conf:
        conf.write(f"\ninclude '{SETTINGS_FILE}'\n")


def write_settings(server: Postgres, settings: dict[str, str]) -> None:
    """Loopback only, this port, the socket in the server's folder (not /var/run), then
    `settings`."""
    lines = {
        "listen_addresses": HOST,
        "port": str(server.port),
        "unix_socket_directories": str(server.folder),
        **settings,
    }
    text = "".join(f"{k} = '{v}'\n" for k, v in lines.items())
    (server.data_dir / SETTINGS_FILE).write_text(text)
