"""The `fsvae-study demo-data`, `trial` and `keys` commands, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from fsvae.config import KEYS
from helpers import cli

TINY_SETS = [
    "--set",
    "backbone_epochs=1",
    "--set",
    "vae_epochs=3",
    "--set",
    "classifier_epochs=2",
    "--set",
    "image_size=16",
    "--set",
    "sampling_factor=4",
    "--set",
    "device=cpu",
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`demo-data DIR --defects` at 10 images per class: (completed process, DIR)."""
    root = tmp_path_factory.mktemp("cli") / "data"
    done = cli("demo-data", str(root), "--defects", "--per-class", "10", "--image-size", "24")
    return done, root


@pytest.fixture(scope="module")
def trial(demo, tmp_path_factory):
    """`trial --preset tiny` on the demo with a cache dir: (completed process, out dir, cache)."""
    base = tmp_path_factory.mktemp("cli-trial")
    out, cache = base / "out", base / "cache"
    done = cli(
        "trial",
        "--data",
        str(demo[1]),
        "--preset",
        "tiny",
        *TINY_SETS,
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
    )
    return done, out, cache


def test_demo_data_exits_zero_and_writes_the_fashionstyle14_layout(demo):
    done, root = demo
    assert done.returncode == 0, done.stderr
    assert all((root / f"{s}.csv").is_file() for s in ("train", "val", "test"))
    assert (root / "dataset" / "street").is_dir()


def test_demo_data_says_how_many_defects_it_wrote(demo):
    assert "10 deliberate defects" in demo[0].stdout


def test_demo_data_into_a_non_empty_folder_fails_cleanly(demo):
    done = cli("demo-data", str(demo[1]))
    assert done.returncode == 2
    assert "not empty" in done.stderr and "Traceback" not in done.stderr


def test_demo_data_with_too_few_images_per_class_fails_cleanly(tmp_path):
    done = cli("demo-data", str(tmp_path / "d"), "--per-class", "5")
    assert done.returncode == 2
    assert "per_class must be at least 10" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "d").exists()


def test_trial_exits_zero(trial):
    done = trial[0]
    assert done.returncode == 0, done.stderr[-3000:]


def test_trial_prints_the_data_report_counts_on_stderr(trial):
    err = trial[0].stderr
    assert "data: 142 usable of 150 listed" in err
    for count in (
        "1 missing",
        "1 outside_root",
        "1 not_image",
        "1 unreadable",
        "1 duplicate,",
        "1 duplicate_across_splits",
        "2 label_conflict",
        "1 odd_extension",
        "1 non_ascii_name",
    ):
        assert count in err, count


def test_trial_prints_the_metrics_as_one_json_object_on_the_last_stdout_line(trial):
    done, out, _ = trial
    last = done.stdout.strip().splitlines()[-1]
    metrics = json.loads(last)
    assert {"val_acc", "val_acc_h", "test_acc", "test_acc_h"} <= set(metrics)
    assert metrics == json.loads((out / "metrics.json").read_text())


def test_trial_reports_progress_per_epoch_on_stderr(trial):
    err = trial[0].stderr
    assert "backbone: epoch=0" in err and "vae: epoch=2" in err
    assert "classifier: epoch=1" in err


def test_trial_writes_its_outputs_to_out(trial):
    out = trial[1]
    for name in ("config.json", "data_report.json", "metrics.json", "split/train.txt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "config.json").read_text())["backbone"] == "resnet18"  # tiny


def test_second_trial_with_the_same_cache_dir_reuses_the_stages(trial, demo, tmp_path):
    first, _, cache = trial
    again = cli(
        "trial",
        "--data",
        str(demo[1]),
        "--preset",
        "tiny",
        *TINY_SETS,
        "--out",
        str(tmp_path / "again"),
        "--cache-dir",
        str(cache),
    )
    assert again.returncode == 0, again.stderr[-3000:]
    for stage in ("data", "backbone", "vae"):
        assert f"cache: {stage} " in again.stderr and f"{stage} " in again.stderr
    hits = [
        line
        for line in again.stderr.splitlines()
        if line.startswith("cache: ") and line.endswith(" hit")
    ]
    assert len(hits) == 3
    assert again.stdout.strip().splitlines()[-1] == first.stdout.strip().splitlines()[-1]


def test_unknown_key_exits_non_zero_naming_the_key(demo, tmp_path):
    done = cli(
        "trial", "--data", str(demo[1]), "--set", "latent_dims=8", "--out", str(tmp_path / "o")
    )
    assert done.returncode == 2
    assert "'latent_dims'" in done.stderr and "latent_dim" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_value_exits_non_zero_naming_the_key_and_expectation(demo, tmp_path):
    done = cli("trial", "--data", str(demo[1]), "--set", "n_f=0", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert "'n_f'" in done.stderr and "minimum" in done.stderr
    assert "Traceback" not in done.stderr


def test_value_not_in_choices_exits_non_zero_naming_the_key(demo, tmp_path):
    done = cli("trial", "--data", str(demo[1]), "--set", "method=svm", "--out", str(tmp_path / "o"))
    assert done.returncode == 2 and "'method'" in done.stderr and "'svm'" in done.stderr


def test_missing_data_path_exits_non_zero_with_a_clear_message(tmp_path):
    missing = tmp_path / "no-such-dataset"
    done = cli("trial", "--data", str(missing), "--preset", "tiny", "--out", str(tmp_path / "o"))
    assert done.returncode == 2
    assert str(missing) in done.stderr and "not a directory" in done.stderr
    assert "Traceback" not in done.stderr


def test_data_path_in_neither_layout_exits_non_zero_with_a_clear_message(tmp_path):
    (tmp_path / "photos").mkdir()
    done = cli(
        "trial",
        "--data",
        str(tmp_path / "photos"),
        "--preset",
        "tiny",
        "--out",
        str(tmp_path / "o"),
    )
    assert done.returncode == 2
    assert "neither layout" in done.stderr and "Traceback" not in done.stderr


def test_keys_prints_every_config_key():
    script = Path(sys.executable).parent / "fsvae-study"
    if script.is_file():  # the installed entry point, as a user runs it
        done = subprocess.run([str(script), "keys"], capture_output=True, text=True, timeout=120)
    else:
        done = cli("keys")
    assert done.returncode == 0, done.stderr
    assert all(f"`{key}`" in done.stdout for key in KEYS)
