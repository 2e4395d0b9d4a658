"""fsvae.cache.StageCache as a store: keys, hits, one build for concurrent requests, crash
safety, damaged entries, listing and removing (test_cache_trials.py: the keys in real trials)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from fsvae.cache import StageCache, entries, make_key, remove
from helpers import REPO, quiet

PARTS = {"data": "abc", "n_f": 5}

# A process that asks the cache for one entry. Its build appends a line to a counter file,
# then holds on until another process reports that it is waiting for this build (the
# cache logs "waiting" when the key's lock is taken), so the two requests surely overlap.
REQUEST = r"""
import json, os, sys, time
from pathlib import Path
from fsvae.cache import StageCache

root, counter, ready, go, mode = sys.argv[1:6]
waiting = Path(counter).with_name("waiting")

def compute():
    with open(counter, "a") as f:
        f.write(f"{os.getpid()}\n")
    if mode == "normal":
        end = time.monotonic() + 20
        while not waiting.exists() and time.monotonic() < end:
            time.sleep(0.01)
    return "built"

def save(value, folder):
    (folder / "value.txt").write_text("partial")
    if mode == "die-while-saving":
        Path(ready + ".saving").touch()
        time.sleep(60)  # killed here
    (folder / "value.txt").write_text(value)

def restore(folder):
    return (folder / "value.txt").read_text()

def log(message):
    if "waiting" in message:
        waiting.touch()

Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.005)
value, info = StageCache(root, log=log).get_or_build(
    "stage", {"data": "abc", "n_f": 5}, compute, save, restore)
print(json.dumps({"value": value, **info}))
"""


def start_request(tmp: Path, root: Path, name: str, mode: str = "normal") -> subprocess.Popen:
    script = tmp / "request.py"
    if not script.exists():
        script.write_text(REQUEST)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [
            sys.executable,
            str(script),
            str(root),
            str(tmp / "counter.txt"),
            str(tmp / f"{name}.ready"),
            str(tmp / "go"),
            mode,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise AssertionError(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.01)


def text_cache(root: Path) -> tuple[StageCache, list[str]]:
    """A cache and a list recording every build it runs."""
    return StageCache(root, log=quiet), []


def save_text(value: str, folder: Path) -> None:
    (folder / "value.txt").write_text(value)


def get(cache: StageCache, builds: list[str], parts=PARTS, value: str = "v"):
    def compute():
        builds.append(value)
        return value

    return cache.get_or_build(
        "stage",
        parts,
        compute,
        save_text,
        lambda folder: (folder / "value.txt").read_text(),
    )


def assert_lock_free(root: Path, parts=PARTS) -> None:
    lock = FileLock(str(root / "stage" / f"{make_key(parts)}.lock"))
    lock.acquire(timeout=5)  # raises filelock.Timeout if a dead builder still held it
    lock.release()


# -- one process ------------------------------------------------------------------------------


def test_first_request_is_a_miss_that_builds(tmp_path):
    cache, builds = text_cache(tmp_path)
    value, info = get(cache, builds)
    assert (value, info["hit"], builds) == ("v", False, ["v"])


def test_second_request_is_a_hit_that_does_not_build(tmp_path):
    cache, builds = text_cache(tmp_path)
    get(cache, builds)
    value, info = get(cache, builds, value="other")
    assert (value, info["hit"], builds) == ("v", True, ["v"])


def test_entry_records_the_parts_of_its_key(tmp_path):
    cache, builds = text_cache(tmp_path)
    _, info = get(cache, builds)
    meta = json.loads((cache.entry("stage", info["key"]) / "entry.json").read_text())
    assert meta["parts"] == PARTS and meta["key"] == info["key"]


def test_key_changes_with_any_part():
    assert make_key({**PARTS, "n_f": 10}) != make_key(PARTS)
    assert make_key({**PARTS, "extra": None}) != make_key(PARTS)


def test_key_does_not_depend_on_the_order_of_parts():
    assert make_key({"n_f": 5, "data": "abc"}) == make_key({"data": "abc", "n_f": 5})


def test_other_parts_are_another_entry(tmp_path):
    cache, builds = text_cache(tmp_path)
    get(cache, builds, value="a")
    value, info = get(cache, builds, parts={**PARTS, "n_f": 10}, value="b")
    assert (value, info["hit"], builds) == ("b", False, ["a", "b"])


# -- two processes ----------------------------------------------------------------------------


def test_concurrent_requests_from_two_processes_build_once(tmp_path):
    root = tmp_path / "cache"
    procs = [start_request(tmp_path, root, name) for name in ("one", "two")]
    for name in ("one", "two"):
        wait_for(tmp_path / f"{name}.ready")
    (tmp_path / "go").touch()  # both ask at once
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=60)
        assert p.returncode == 0, stderr
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    assert len((tmp_path / "counter.txt").read_text().splitlines()) == 1
    assert sorted(o["hit"] for o in outs) == [False, True]
    assert [o["value"] for o in outs] == ["built", "built"]
    assert (tmp_path / "waiting").exists()  # the hit waited on the builder's lock


@pytest.fixture
def killed_build(tmp_path) -> Path:
    """A cache root whose only builder was SIGKILLed while saving its entry."""
    root = tmp_path / "cache"
    p = start_request(tmp_path, root, "victim", mode="die-while-saving")
    wait_for(tmp_path / "victim.ready")
    (tmp_path / "go").touch()
    wait_for(tmp_path / "victim.ready.saving")
    os.kill(p.pid, signal.SIGKILL)
    p.communicate(timeout=30)
    assert p.returncode == -signal.SIGKILL
    return root


def test_builder_killed_during_its_build_leaves_no_entry(killed_build):
    key = make_key(PARTS)
    assert not (killed_build / "stage" / key).exists()
    assert list((killed_build / "stage").glob(f".tmp-{key}-*"))  # it died half-way


def test_killed_builder_does_not_keep_the_lock(killed_build):
    assert_lock_free(killed_build)


def test_request_after_a_killed_build_is_a_miss_that_rebuilds(killed_build):
    assert_lock_free(killed_build)
    cache, builds = text_cache(killed_build)
    value, info = get(cache, builds, value="fresh")
    assert (value, info["hit"], builds) == ("fresh", False, ["fresh"])
    assert (cache.entry("stage", info["key"]) / "value.txt").read_text() == "fresh"


def test_next_builder_removes_the_killed_builders_tmp_folder(killed_build):
    assert_lock_free(killed_build)
    cache, builds = text_cache(killed_build)
    get(cache, builds)
    assert not list((killed_build / "stage").glob(".tmp-*"))


# -- damaged entries -------------------------------------------------------------------------


def test_an_unreadable_entry_is_discarded_and_rebuilt(tmp_path):
    cache, builds = text_cache(tmp_path)
    get(cache, builds, value="v")
    entry = tmp_path / "stage" / make_key(PARTS)
    (entry / "value.txt").unlink()  # e.g. a hand edit, or a disk that lost the file
    value, info = get(cache, builds, value="rebuilt")
    assert (value, info["hit"], builds) == ("rebuilt", False, ["v", "rebuilt"])
    assert info["repaired"].startswith("FileNotFoundError")
    assert (
        "FileNotFoundError" in json.loads((entry / "entry.json").read_text())["replaced_unreadable"]
    )
    assert [p.name for p in (tmp_path / "stage").iterdir() if p.is_dir()] == [entry.name]
    assert get(cache, builds, value="third")[0] == "rebuilt" and len(builds) == 2
    assert_lock_free(tmp_path)


def test_a_request_that_fails_to_read_then_finds_the_entry_repaired_does_not_rebuild(tmp_path):
    # Two readers of a damaged entry: the first repairs it under the lock; the second, whose
    # first read failed before the repair, reads the repaired entry instead of rebuilding.
    cache, builds = text_cache(tmp_path)
    get(cache, builds, value="v")
    entry = tmp_path / "stage" / make_key(PARTS)
    reads = []

    def restore(folder):
        reads.append(folder)
        if len(reads) == 1:
            (folder / "value.txt").write_text("fixed")  # another process repaired it
            raise OSError("read failed")
        return (folder / "value.txt").read_text()

    value, info = cache.get_or_build(
        "stage",
        PARTS,
        lambda: builds.append("x") or "x",
        save_text,
        restore,
    )
    assert (value, info["hit"], builds, "repaired" in info) == ("fixed", True, ["v"], False)
    assert reads == [entry, entry]


# -- listing and removing entries (`fsvae-study cache`) --------------------------------------


def test_entries_lists_complete_entries_and_unfinished_builds(tmp_path):
    cache, builds = text_cache(tmp_path)
    get(cache, builds, value="hello")
    key = make_key(PARTS)
    (tmp_path / "stage" / f".tmp-{'f' * 32}-123-abcd1234").mkdir()  # a crashed builder's
    rows = {r["key"]: r for r in entries(tmp_path)}
    assert rows[key]["state"] == "complete" and rows[key]["stage"] == "stage"
    assert rows[key]["parts"] == PARTS
    assert (
        rows[key]["bytes"]
        == len("hello") + (tmp_path / "stage" / key / "entry.json").stat().st_size
    )
    assert rows["f" * 32]["state"] == "building"
    assert len(rows) == 2  # no .lock files


def test_remove_deletes_the_entry_a_unique_prefix_names_and_it_is_rebuilt(tmp_path):
    cache, builds = text_cache(tmp_path)
    get(cache, builds, value="v")
    key = make_key(PARTS)
    assert remove(tmp_path, key[:6])["key"] == key
    assert not (tmp_path / "stage" / key).exists()
    assert [p.name for p in (tmp_path / "stage").iterdir() if p.is_dir()] == []
    value, info = get(cache, builds, value="again")
    assert (value, info["hit"]) == ("again", False)


def test_remove_refuses_a_prefix_matching_no_entry_or_several(tmp_path):
    cache, builds = text_cache(tmp_path)
    get(cache, builds)
    get(cache, builds, parts={"data": "other"})
    with pytest.raises(ValueError, match="matches 2 entries"):
        remove(tmp_path, "")
    with pytest.raises(ValueError, match="matches 0 entries"):
        remove(tmp_path, "zz")
    assert len(entries(tmp_path)) == 2


def test_remove_does_not_touch_an_entry_whose_key_is_being_built(tmp_path):
    cache, builds = text_cache(tmp_path)
    get(cache, builds)
    key = make_key(PARTS)
    lock = FileLock(str(tmp_path / "stage" / f"{key}.lock"))
    lock.acquire()
    try:
        with pytest.raises(TimeoutError, match="being built"):
            remove(tmp_path, key)
    finally:
        lock.release()
    assert (tmp_path / "stage" / key).is_dir()


def test_a_save_that_fails_leaves_no_temporary_folder(tmp_path):
    cache = StageCache(tmp_path / "c", log=lambda s: None)

    def save(value, folder):
        (folder / "half.bin").write_bytes(b"x")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        cache.get_or_build("s", {"k": 1}, lambda: 1, save, lambda f: None)
    stage_dir = tmp_path / "c" / "s"
    assert not list(stage_dir.glob(".tmp-*"))
    assert [p.name for p in stage_dir.iterdir() if p.is_dir()] == []  # no entry either
