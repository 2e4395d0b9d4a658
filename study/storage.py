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

from study.secrets import redact, redact_text


def is_uri(location: str) -> bool:
    return "://" in location


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
        raise ValueError(f"{redact(location)}: not a storage URI pyarrow can open "
                         f"({redact_text(str(e))})") from None


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
