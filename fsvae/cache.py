"""A stage cache shared by trials, processes and (on shared storage) nodes.

An entry is the output of one stage (decoded data, a fine-tuned backbone with its features,
a trained VAE) under `<root>/<stage>/<key>/`, where key = sha256 of everything that
determines it: the data's identity, the stage's config keys, the seed, the source code
of the modules that compute it and of every fsvae module they import (`source_hash`; any
edit to them gives new keys: nothing stale is reused), and the torch and torchvision
versions (`library_versions`).

Protocol, per key:
  1. the entry folder exists -> hit (it only ever appears complete, see 4).
  2. else take an exclusive lock `<root>/<stage>/<key>.lock` (flock; the kernel releases it
     when the holder dies, so a crashed builder never blocks others).
  3. look again: another process may have built it while we waited -> hit.
  4. else build into `.tmp-<key>-<pid>-<random>/` and rename it to `<key>/` (atomic on a
     POSIX filesystem): a builder killed half-way leaves only a .tmp folder, never trusted
     and removed by the next builder of that key.
Two trials wanting the same missing key therefore compute it once: one builds, the other
waits on the lock and then reads the entry.

An entry that exists but cannot be read (a truncated or deleted file, say after a full disk
or a hand edit) is repaired: under the lock, if it still cannot be read, it is renamed to
`.bad-<key>-...` (readers that already opened it keep their files), deleted, and rebuilt as
in 4. The rebuild's info carries "repaired": the read error, and its entry.json keeps it.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

import fsvae


def source_hash(*modules: str) -> str:
    """sha256 of the source of the named fsvae modules (e.g. "backbone") and of every fsvae
    module they import, directly or not (source_modules): the code part of a stage's key."""
    h = hashlib.sha256()
    for name in sorted(source_modules(*modules)):
        h.update(f"{name}\0".encode())
        h.update(_source_file(name).read_bytes())
    return h.hexdigest()[:16]


def source_modules(*modules: str) -> set[str]:
    """The named fsvae modules and every fsvae module they import, directly or not, found by
    parsing their source (imports inside functions too). The list is derived, not written
    down, so that code moved into a new module cannot drop out of a stage's key."""
    found: set[str] = set()
    todo = list(modules)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(_imports(name))
    return found


def _source_file(name: str) -> Path:
    path = Path(fsvae.__file__).parent / f"{name}.py"
    if not path.is_file():
        raise ValueError(
            f"fsvae module {name!r}: no file {path}; expected the name of a "
            f"module in the fsvae package, e.g. 'backbone'"
        )
    return path


def _imports(name: str) -> set[str]:
    """The fsvae modules that fsvae.<name> imports (the package's own __init__ left out: it
    holds no code a stage runs)."""
    tree = ast.parse(_source_file(name).read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            dotted = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: fsvae's modules are one package deep
                module = f"fsvae.{module}".rstrip(".")
            # `from fsvae import data` names a module; `from fsvae.data import load`, a name.
            dotted = [f"{module}.{a.name}" for a in node.names] if module == "fsvae" else [module]
        else:
            continue
        for full in dotted:
            parts = full.split(".")
            if (
                parts[0] == "fsvae"
                and len(parts) > 1
                and (Path(fsvae.__file__).parent / f"{parts[1]}.py").is_file()
            ):
                found.add(parts[1])
    return found


def library_versions() -> dict[str, str]:
    """The torch and torchvision that compute a stage. Another release can give other
    numbers for the same code and config (kernels, pretrained weights), so an entry built
    by one is not reused silently by another: the versions are part of every key."""
    import torch
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__}


def make_key(parts: dict[str, Any]) -> str:
    blob = json.dumps(
        {**parts, "libraries": library_versions()},
        sort_keys=True,
        default=str,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class StageCache:
    def __init__(self, root: str | Path, log: Callable[[str], None] = print):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = log

    def entry(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def get_or_build(
        self,
        stage: str,
        parts: dict[str, Any],
        compute: Callable[[], Any],
        save: Callable[[Any, Path], None],
        restore: Callable[[Path], Any],
    ) -> tuple[Any, dict]:
        """Returns (value, info) with info = {"key", "hit", "waited_s", "build_s"}, plus
        "repaired" (the read error) when an unreadable entry was rebuilt."""
        key = make_key(parts)
        final = self.entry(stage, key)
        info: dict[str, Any] = {"key": key, "hit": True, "waited_s": 0.0, "build_s": 0.0}
        if final.is_dir():
            try:
                return restore(final), info
            except MemoryError:
                raise
            except Exception:  # unreadable: repaired below, under the lock
                pass
        final.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(final.parent / f"{key}.lock"))
        t0 = time.perf_counter()
        try:
            lock.acquire(timeout=0)
        except Timeout:  # someone else is building this key
            self.log(f"cache: waiting for {stage} {key[:12]}, being built by another trial")
            lock.acquire()
        info["waited_s"] = time.perf_counter() - t0
        try:
            if final.is_dir():
                try:
                    return restore(final), info
                except MemoryError:
                    raise
                except Exception as e:  # still unreadable, and no one else is repairing it
                    info["repaired"] = f"{type(e).__name__}: {e}"[:500]
                    self._discard(stage, final, info["repaired"])
            for stale in final.parent.glob(f".tmp-{key}-*"):
                shutil.rmtree(stale, ignore_errors=True)  # a crashed builder's leftovers
            info["hit"] = False
            t1 = time.perf_counter()
            value = compute()
            tmp = final.parent / f".tmp-{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                save(value, tmp)
                info["build_s"] = time.perf_counter() - t1
                meta = {
                    "stage": stage,
                    "key": key,
                    "parts": parts,
                    "libraries": library_versions(),
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                    "created": time.time(),
                    "build_s": info["build_s"],
                }
                if "repaired" in info:
                    meta["replaced_unreadable"] = info["repaired"]
                (tmp / "entry.json").write_text(json.dumps(meta, indent=1, default=str))
                _fsync_tree(tmp)
                os.rename(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)  # e.g. a full disk: leave nothing
                raise
            return value, info
        finally:
            lock.release()

    def _discard(self, stage: str, final: Path, reason: str) -> None:
        """Takes an unreadable entry out of the cache: renamed first, so that no one trusts
        it from now on, then deleted."""
        bad = final.parent / f".bad-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(final, bad)
        shutil.rmtree(bad, ignore_errors=True)
        self.log(
            f"cache: {stage} {final.name[:12]} could not be read ({reason}); "
            f"discarded it, rebuilding"
        )


def entries(root: str | Path) -> list[dict[str, Any]]:
    """Every entry and unfinished build under a cache root, for `fsvae-study cache`: dicts
    with stage, key, state (complete | building: a .tmp folder, being built now or left by
    a crashed builder), path, bytes, created (epoch s), build_s and parts."""
    out = []
    root = Path(root)
    for stage_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        for path in sorted(stage_dir.iterdir()):
            if not path.is_dir():
                continue  # .lock files
            state = (
                "building"
                if path.name.startswith(".tmp-")
                else None
                if path.name.startswith(".")
                else "complete"
            )
            if state is None:
                continue  # .bad-/.removed- folders being deleted right now
            meta = {}
            try:
                meta = json.loads((path / "entry.json").read_text())
            except (OSError, ValueError):
                pass
            files = [f for f in path.rglob("*") if f.is_file()]
            key = path.name if state == "complete" else path.name.split("-")[1]
            out.append(
                {
                    "stage": stage_dir.name,
                    "key": key,
                    "state": state,
                    "path": str(path),
                    "bytes": sum(f.stat().st_size for f in files),
                    "created": meta.get("created", path.stat().st_mtime),
                    "build_s": meta.get("build_s"),
                    "parts": meta.get("parts", {}),
                }
            )
    return out


def remove(root: str | Path, key_prefix: str) -> dict[str, Any]:
    """Deletes the one complete entry whose key starts with key_prefix, under its key's lock
    (so never an entry being built). Returns its entries() row. ValueError when the prefix
    matches no entry or several; TimeoutError when the key is being built. A trial that has
    already opened the entry keeps its open files; one that reads it afterwards rebuilds it."""
    found = [
        e for e in entries(root) if e["state"] == "complete" and e["key"].startswith(key_prefix)
    ]
    if len(found) != 1:
        which = ", ".join(f"{e['stage']}/{e['key'][:12]}" for e in found)
        raise ValueError(
            f"cache key {key_prefix!r} matches {len(found)} entries"
            + (
                f" ({which}); give more of the key"
                if found
                else f" in {Path(root).resolve()}; `fsvae-study cache` lists them"
            )
        )
    entry = found[0]
    final = Path(entry["path"])
    lock = FileLock(str(final.parent / f"{final.name}.lock"))
    try:
        lock.acquire(timeout=1)
    except Timeout:
        raise TimeoutError(
            f"{entry['stage']} {entry['key'][:12]} is being built by a trial "
            f"now; try again when it is done"
        ) from None
    try:
        gone = final.parent / f".removed-{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(final, gone)
        shutil.rmtree(gone, ignore_errors=True)
    finally:
        lock.release()
    return entry


def _fsync_tree(folder: Path) -> None:
    """Flush the files' data before the rename makes them visible (crash safety)."""
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
