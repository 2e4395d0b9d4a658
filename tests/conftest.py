"""Shared fixtures: one generated dataset, one stage cache, three tiny trials and one
PostgreSQL server per session. Tests that only read a dataset, a split or trial outputs
share these; plain helper functions are in the helpers package (tests/helpers/)."""

from __future__ import annotations

import os

# One thread: the tensors here are tiny, and on a busy 2-core runner two OpenMP threads
# contending with another process made a 1-second trial take 10-20 s (measured).
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported anywhere

from pathlib import Path

import pytest
import torch

from fsvae import data, demo_data
from fsvae.cache import StageCache
from fsvae.trial import run_trial
from helpers import PostgresMissing, quiet, start_postgres, tiny_config, write_image

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The modules with slow tests first, each module whole and in its own order (a module's
    tests may build on one another's state, e.g. a model logged twice). `make test`'s
    processes take modules in this order (--dist loadscope --no-loadscope-reorder): the
    modules that run for minutes start at once and the quick ones fill the end, rather than
    long modules starting last and running alone. The order is the same in every process,
    as pytest-xdist requires."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """demo_data with every defect, 20 images per class (12 train, 2 val, 6 test).

    The defect list names `dataset/../../outside_0001.jpg`, i.e. a file beside the root:
    it is written here as a valid image, so the reader's refusal is tested on a real file.
    """
    base = tmp_path_factory.mktemp("demo")
    root = base / "data"
    demo_data.make(root, per_class=20, image_size=32, seed=0, defects=True)
    write_image(base / "outside_0001.jpg", seed=999, size=32)
    return root


@pytest.fixture(scope="session")
def demo_loaded(demo_root) -> tuple[data.Dataset, list[str]]:
    """The demo dataset read once, with the lines the reader logged."""
    lines: list[str] = []
    ds = data.load(demo_root, load_size=18, workers=1, log=lines.append)
    return ds, lines


@pytest.fixture(scope="session")
def demo_ds(demo_loaded) -> data.Dataset:
    return demo_loaded[0]


@pytest.fixture(scope="session")
def stage_cache(tmp_path_factory) -> StageCache:
    """One stage cache for the session's trials, so backbones are shared where keys agree."""
    return StageCache(tmp_path_factory.mktemp("cache"), log=quiet)


@pytest.fixture(scope="session")
def trials(demo_root, stage_cache, tmp_path_factory) -> dict[str, tuple[dict, Path]]:
    """method -> (run_trial result, out_dir) for plain, oversample and vae."""
    out = {}
    for method in ("plain", "oversample", "vae"):
        folder = tmp_path_factory.mktemp(f"trial-{method}")
        result = run_trial(
            tiny_config(demo_root, method=method), out_dir=folder, cache=stage_cache, log=quiet
        )
        out[method] = (result, folder)
    return out


@pytest.fixture(scope="session")
def postgres():
    """One real PostgreSQL server for the session (helpers.start_postgres): loopback, a
    password-protected role, a database per test through `postgres.create_database(name)`.
    Without the server binaries the tests that use it fail (they never skip): CI must run
    them."""
    try:
        server, missing = start_postgres(), None
    except PostgresMissing as e:
        server, missing = None, str(e)
    if missing:
        pytest.fail(missing, pytrace=False)
    yield server
    server.stop()
