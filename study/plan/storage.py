"""Where a study keeps its files: a local folder or an object-store URI, read and written
the same way.

A location is a string: an absolute local path, or a URI that pyarrow understands
(`s3://bucket/prefix`, with options after `?`, e.g.
`s3://bucket/studies?endpoint_override=http://127.0.0.1:9000&scheme=http`). Sub-paths are
joined before the query, so the options stay with every path below the URI.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from study.errors import StudyError
from study.secrets import redact, redact_text


def is_uri(location: str) -> bool:
    return "://" in location


def default_tracking_uri(storage: Path) -> str:
    """The study's default MLflow store: SQLite under its local storage."""
    return f"sqlite:///{(Path(storage) / 'mlflow.db').resolve()}"


def resolve(location: str) -> str:
    """An absolute local path, or the URI as given."""
    return location if is_uri(location) else str(Path(location).expanduser().resolve())


def join(base: str, *parts: str) -> str:
    """`base/part/...`: for a URI the parts go into its path, before any `?options`."""
    if not is_uri(base):
        return str(Path(base, *parts))
    scheme, netloc, path, query, fragment = urlsplit(base)
    path = "/".join([path.rstrip("/"), *parts])
    return urlunsplit((scheme, netloc, path, query, fragment))


def filesystem(location: str):
    """(pyarrow filesystem, path in it) for a URI; raises ValueError with pyarrow's reason."""
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(location)
    except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
        raise ValueError(
            f"{redact(location)}: not a storage URI pyarrow can open ({redact_text(str(e))})"
        ) from None


def read_text(location: str) -> str | None:
    """The file's text, or None when it does not exist."""
    if not is_uri(location):
        p = Path(location)
        return p.read_text(encoding="utf-8") if p.is_file() else None
    fs, path = filesystem(location)
    try:
        with fs.open_input_stream(path) as f:
            return f.read().decode("utf-8")
    except (FileNotFoundError, OSError):
        return None


def write_text(location: str, text: str) -> None:
    """Writes the whole file at once: local files are written beside and renamed into place,
    so a reader never sees half of one (an object store's PUT is atomic already)."""
    if not is_uri(location):
        p = Path(location)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, p)
        return
    fs, path = filesystem(location)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(text.encode("utf-8"))


def remove(location: str) -> None:
    if not is_uri(location):
        Path(location).unlink(missing_ok=True)
        return
    fs, path = filesystem(location)
    try:
        fs.delete_file(path)
    except (FileNotFoundError, OSError):
        pass


def database_url(url: str) -> str:
    """An --optuna-storage URL SQLAlchemy can open (sqlite:///..., postgresql://...): checked
    here, before any process or record exists."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(url).get_dialect()
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as e:
        raise StudyError(
            f"--optuna-storage {redact(url)!r}: not a database URL this machine "
            f"can open ({type(e).__name__}: {redact_text(str(e))}); expected "
            f"e.g. sqlite:////abs/optuna.db or postgresql://user@host/db"
        ) from None
    return url


# -- the record's stores on a cluster ------------------------------------------------------

NETWORK_FS = {
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "9p",
    "afs",
    "lustre",
    "gpfs",
    "ceph",
    "glusterfs",
    "beegfs",
    "fuse.sshfs",
    "fuse.s3fs",
    "fuse.gcsfuse",
    "fuse.ceph",
    "fuse.glusterfs",
    "fuse.juicefs",
    "fuse.rclone",
    "fuse.mountpoint-s3",
}
SERVER_SETUP = (
    "on a cluster every node writes the record: run an MLflow server backed by "
    "PostgreSQL (`mlflow server --backend-store-uri postgresql://...`) and pass "
    "--tracking-uri http://HEAD:5000, and put Optuna's store on PostgreSQL too "
    "(--optuna-storage postgresql://...); see "
    "docs/cluster.md#3-the-record-postgresql-for-both-mlflow-and-optuna"
)


def filesystem_type(path: str | Path) -> str:
    """The type of the filesystem holding `path` (Linux's /proc/self/mountinfo), "" when it
    cannot be told. FSVAE_NETWORK_FS (comma-separated types, e.g. "ext4") adds types to treat
    as network filesystems: a test hook, as in study/hooks/faults.py."""
    target = os.path.realpath(path)
    best, kind = "", ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                point = left.split()[4].replace("\\040", " ")
                if (target == point or target.startswith(point.rstrip("/") + "/")) and len(
                    point
                ) >= len(best):
                    best, kind = point, right.split()[0]
    except (OSError, IndexError):
        return ""
    return kind


def network_filesystem(path: str | Path) -> str | None:
    """The network filesystem type holding `path`, None when it is local."""
    kind = filesystem_type(path)
    extra = {t.strip() for t in os.environ.get("FSVAE_NETWORK_FS", "").split(",") if t.strip()}
    return kind if kind in NETWORK_FS | extra else None


def check_record_for_cluster(tracking_uri: str, optuna_storage: str | None) -> None:
    """A study that joins a cluster (--address) must not keep its record in SQLite on a
    network filesystem; StudyError naming the file and the server setup otherwise."""
    for what, url in (("MLflow", tracking_uri), ("Optuna", optuna_storage)):
        if url and url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            kind = network_filesystem(path.parent if not path.exists() else path)
            if kind:
                raise StudyError(
                    f"the {what} store {path} is SQLite on a network filesystem "
                    f"({kind}), where SQLite's locking fails and several "
                    f"writers can corrupt it; {SERVER_SETUP}"
                )
