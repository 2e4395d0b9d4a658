"""Counts a study's calls to MLflow and Optuna, in every process it starts (tests only).

Python imports `sitecustomize` at start-up from sys.path, so a command started with this
folder first on PYTHONPATH, and every process that inherits its environment (Ray's local
workers do), loads it. With FSVAE_TEST_COUNT_CALLS=<file> set, it wraps, once each module
is imported (nothing is imported early):

  client  mlflow.tracking.MlflowClient         the MLflow calls the harness makes
  store   mlflow's SqlAlchemyStore             what reaches the database (a transaction each)
  optuna  optuna's _CachedStorage              the storage calls a Study makes
  rdb     optuna.storages.RDBStorage           what reaches the database

and appends one JSON line per call to the file: pid, argv[0], thread, layer, method, the
run id it is about (first argument or run_id=, or the run create_run made), and the
project functions on the stack (study/..., fsvae_study/...). Only the outermost call of a
layer is written (a store method calling another counts once). Each line is one write to
a file opened O_APPEND, so lines of processes killed mid-study stay whole.

"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.util
import inspect
import json
import os
import re
import sys
import threading
from types import FrameType
from typing import Any

OUT = os.environ.get("FSVAE_TEST_COUNT_CALLS")
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
# This checkout's study/ and fsvae_study/ (tests/helpers/callcount/ is three folders down)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
PROJECT = tuple(os.path.join(ROOT, p) + os.sep for p in ("study", "fsvae_study"))


def _targets():
    def mlflow_client(m):
        return [("client", m.MlflowClient)]

    def mlflow_store(m):
        return [("store", m.SqlAlchemyStore)]

    def optuna_cached(m):
        return [("optuna", m._CachedStorage)]

    def optuna_rdb(m):
        return [("rdb", m.RDBStorage)]

    return {
        "mlflow.tracking.client": mlflow_client,
        "mlflow.store.tracking.sqlalchemy_store": mlflow_store,
        "optuna.storages._cached_storage": optuna_cached,
        "optuna.storages._rdb.storage": optuna_rdb,
    }


_local = threading.local()


def _write(record: dict) -> None:
    assert OUT is not None  # the finder that leads here is installed only when it is set
    line = (json.dumps(record, default=str) + "\n").encode()
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _stack() -> list[str]:
    """Project functions on the caller's stack, innermost first."""
    found: list[str] = []
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and len(found) < 12:
        code = frame.f_code
        if code.co_filename.startswith(PROJECT):
            found.append(f"{os.path.basename(code.co_filename)}:{code.co_qualname}")
        frame = frame.f_back
    return found


def _run_of(args, kwargs) -> str | None:
    value = kwargs.get("run_id", args[0] if args else None)
    return value if isinstance(value, str) and RUN_ID.match(value) else None


def _wrap(layer: str, cls, name: str, fn):
    @functools.wraps(fn)
    def counted(self, *args, **kwargs):
        depth = getattr(_local, layer, 0)
        setattr(_local, layer, depth + 1)
        try:
            result = fn(self, *args, **kwargs)
        finally:
            setattr(_local, layer, depth)
        if depth == 0:
            run = _run_of(args, kwargs)
            if name == "create_run":
                run = getattr(getattr(result, "info", None), "run_id", run)
            _write(
                {
                    "pid": os.getpid(),
                    "argv0": sys.argv[0] if sys.argv else "",
                    "thread": threading.current_thread().name,
                    "layer": layer,
                    "cls": cls.__name__,
                    "method": name,
                    "run": run,
                    "stack": _stack(),
                }
            )
        return result

    # A mark for _patch, so nothing is wrapped twice: a function takes any attribute, which
    # its static type does not declare.
    marked: Any = counted
    marked.__fsvae_counted__ = True
    return counted


def _patch(layer: str, cls) -> None:
    for name in dir(cls):
        # Optuna's _CachedStorage calls RDBStorage's private methods (_get_trials,
        # _set_trial_param, ...): there, every method is a way in.
        private_too = layer == "rdb" and not name.startswith("__")
        if name.startswith("_") and not private_too:
            continue
        raw = inspect.getattr_static(cls, name)
        if not inspect.isfunction(raw) or getattr(raw, "__fsvae_counted__", False):
            continue
        setattr(cls, name, _wrap(layer, cls, name, raw))


def _after_import(module) -> None:
    for layer, cls in _targets()[module.__name__](module):
        _patch(layer, cls)


class _Loader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        self.inner.exec_module(module)
        _after_import(module)

    def __getattr__(self, name):  # get_source, get_code, ...: the real loader's
        return getattr(self.inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.names:
            return None
        self.names.discard(fullname)  # find the real spec without coming back here
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self.names.add(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _Loader(spec.loader)
        return spec


if OUT:
    names = set(_targets())
    sys.meta_path.insert(0, _Finder(names))
