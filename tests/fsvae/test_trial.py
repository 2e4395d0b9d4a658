"""fsvae.trial.run_trial end to end on the generated dataset, at toy size."""

from __future__ import annotations

import ast
import json
import re

import pytest
import torch

from fsvae import demo_data
from fsvae.backbone import BackboneError
from fsvae.cache import StageCache
from fsvae.split import SplitError
from fsvae.trial import TrialError, prepare, run_trial
from helpers import REPO, quiet, tiny_config

METHODS = ("plain", "oversample", "vae")


def by_hand(y: list[int], pred: list[int], classes: list[str], minority: list[str]) -> dict:
    """The paper's metrics from labels and predictions, written out plainly: group accuracies
    are the mean of per-class accuracies (CADA-VAE), acc_h their harmonic mean; *_samples
    the share of a group's images predicted right."""
    per_class = {}
    for k, name in enumerate(classes):
        rows = [i for i, label in enumerate(y) if label == k]
        if rows:
            per_class[name] = sum(pred[i] == k for i in rows) / len(rows)
    maj_accs = [a for c, a in per_class.items() if c not in minority]
    mnr_accs = [a for c, a in per_class.items() if c in minority]
    maj, mnr = sum(maj_accs) / len(maj_accs), sum(mnr_accs) / len(mnr_accs)
    in_minority = [classes[label] in minority for label in y]
    hits = [p == t for p, t in zip(pred, y)]
    maj_s = sum(h for h, m in zip(hits, in_minority) if not m) / in_minority.count(False)
    mnr_s = sum(h for h, m in zip(hits, in_minority) if m) / in_minority.count(True)
    return {
        "acc": sum(hits) / len(y),
        "acc_majority": maj,
        "acc_minority": mnr,
        "acc_h": harmonic(maj, mnr),
        "acc_majority_samples": maj_s,
        "acc_minority_samples": mnr_s,
        "acc_h_samples": harmonic(maj_s, mnr_s),
        **{f"class_acc/{c}": a for c, a in per_class.items()},
    }


def harmonic(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize("method", METHODS)
def test_group_accuracies_and_acc_h_follow_from_the_confusion_matrix(trials, method, split):
    result = trials[method][0]
    cm, classes = result["confusion"][split], result["classes"]
    # Expand the matrix (row = true class, column = prediction) back into labels.
    y = [k for k, row in enumerate(cm) for j, n in enumerate(row) for _ in range(n)]
    pred = [j for row in cm for j, n in enumerate(row) for _ in range(n)]
    expected = by_hand(y, pred, classes, result["minority_classes"])
    for name, value in expected.items():
        assert result["metrics"][f"{split}_{name}"] == pytest.approx(value, abs=1e-6), name


@pytest.mark.parametrize("method", ["plain", "oversample"])
def test_backbone_methods_score_the_heads_predictions_on_the_stored_features(
    trials, stage_cache, method
):
    result = trials[method][0]
    entry = stage_cache.entry("backbone", result["cache"]["backbone"]["key"])
    features = torch.load(entry / "features.pt", weights_only=True)
    for split in ("val", "test"):
        y = features[split]["y"].tolist()
        pred = features[split]["logits"].argmax(1).tolist()
        expected = by_hand(y, pred, result["classes"], result["minority_classes"])
        for name, value in expected.items():
            assert result["metrics"][f"{split}_{name}"] == pytest.approx(value, abs=1e-6), name


@pytest.mark.parametrize("split", ["val", "test"])
@pytest.mark.parametrize("method", METHODS)
def test_confusion_rows_count_each_classs_images_in_the_split(trials, method, split):
    result, out = trials[method]
    counts = json.loads((out / "split" / "split.json").read_text())["counts"][split]
    assert [sum(row) for row in result["confusion"][split]] == [
        counts[c] for c in result["classes"]
    ]


@pytest.mark.parametrize("method", METHODS)
def test_every_accuracy_is_between_zero_and_one(trials, method):
    values = {k: v for k, v in trials[method][0]["metrics"].items() if "acc" in k}
    assert values and all(0.0 <= v <= 1.0 for v in values.values())


@pytest.mark.parametrize("method", METHODS)
def test_metrics_are_reported_for_val_and_test(trials, method):
    m = trials[method][0]["metrics"]
    for prefix in ("val_", "test_"):
        for name in (
            "acc",
            "acc_majority",
            "acc_minority",
            "acc_h",
            "acc_majority_samples",
            "acc_minority_samples",
            "acc_h_samples",
        ):
            assert prefix + name in m


@pytest.mark.parametrize("method", METHODS)
def test_confusion_matrices_count_every_val_and_test_image(trials, method):
    result = trials[method][0]
    # demo: 2 val and 6 test images per class; minority val min(n_f=5, 2) = 2.
    assert sum(map(sum, result["confusion"]["val"])) == 14 * 2
    assert sum(map(sum, result["confusion"]["test"])) == 14 * 6


def test_test_acc_matches_the_test_confusion_matrix(trials):
    result = trials["vae"][0]
    cm = torch.tensor(result["confusion"]["test"])
    assert result["metrics"]["test_acc"] == pytest.approx((cm.diag().sum() / cm.sum()).item())


@pytest.mark.parametrize("method", METHODS)
def test_out_dir_holds_config_report_split_and_metrics(trials, method):
    result, out = trials[method]
    for name in (
        "config.json",
        "data_report.json",
        "metrics.json",
        "confusion.json",
        "history.json",
        "split/train.txt",
        "split/val.txt",
        "split/test.txt",
        "split/split.json",
    ):
        assert (out / name).is_file(), name
    assert json.loads((out / "metrics.json").read_text()) == result["metrics"]


def test_config_json_is_the_resolved_config(trials):
    result, out = trials["vae"]
    saved = json.loads((out / "config.json").read_text())
    assert saved["method"] == "vae" and saved["n_f"] == 5 and saved["image_size"] == 16
    assert saved["load_size"] == round(16 * 256 / 224)
    assert saved == json.loads(json.dumps(result["config"]))


def test_trial_proceeds_with_the_usable_files_and_reports_the_defects(trials):
    result, out = trials["plain"]
    report = json.loads((out / "data_report.json").read_text(encoding="utf-8"))
    assert result["data_summary"] == report["summary"]
    assert report["summary"]["missing"] == 1 and report["summary"]["odd_extension"] == 1
    assert report["splits"]["train"] == {"listed": 178, "usable": 170}


def test_split_files_list_n_f_train_images_per_minority_class(trials):
    result, out = trials["vae"]
    meta = json.loads((out / "split" / "split.json").read_text(encoding="utf-8"))
    assert meta["minority_classes"] == result["minority_classes"]
    assert [meta["counts"]["train"][c] for c in meta["minority_classes"]] == [5] * 5


def test_history_has_the_stages_each_method_trains(trials):
    def stages(method):
        return {row["stage"] for row in trials[method][0]["history"] if "epoch" in row}

    assert stages("plain") == stages("oversample") == {"backbone"}
    assert stages("vae") == {"backbone", "vae", "classifier"}


def test_vae_history_has_one_row_per_configured_epoch(trials):
    rows = [r for r in trials["vae"][0]["history"] if r["stage"] == "vae" and "epoch" in r]
    assert [r["epoch"] for r in rows] == [0, 1, 2]


def test_minority_classes_are_five_of_the_fourteen_styles(trials):
    names = trials["vae"][0]["minority_classes"]
    assert len(set(names)) == 5 and set(names) <= set(demo_data.CLASSES)


def test_progress_receives_every_epoch_and_cache_lookup(demo_root, stage_cache, trials):
    # The session trials built the data and the backbone a crt trial needs.
    events = []
    run_trial(
        tiny_config(demo_root, method="crt"), progress=events.append, cache=stage_cache, log=quiet
    )
    lookups = [(e["name"], e["hit"]) for e in events if e["stage"] == "cache"]
    assert lookups == [("data", True), ("backbone", True)]
    assert [e["epoch"] for e in events if e["stage"] == "classifier"] == [0, 1]


def test_cached_backbone_curves_are_replayed_to_progress(demo_root, stage_cache, trials):
    events = []
    run_trial(
        tiny_config(demo_root, method="crt"), progress=events.append, cache=stage_cache, log=quiet
    )
    replayed = [e for e in events if e["stage"] == "backbone" and "epoch" in e]
    assert replayed and all(e["replayed"] for e in replayed)


def test_prepare_builds_the_data_and_backbone_that_a_trial_then_finds_in_the_cache(
    demo_root, tmp_path
):
    cache = StageCache(tmp_path, log=quiet)
    cfg = tiny_config(demo_root, method="vae")
    built = prepare(cfg, cache, log=quiet)
    assert sorted(built["cache"]) == ["backbone", "data"]
    assert not any(info["hit"] for info in built["cache"].values())
    assert {"data", "backbone", "total", "waited"} <= set(built["timings"])
    trial = run_trial(cfg, cache=cache, log=quiet)["cache"]
    assert trial["data"]["hit"] and trial["backbone"]["hit"] and not trial["vae"]["hit"]
    assert trial["backbone"]["key"] == built["cache"]["backbone"]["key"]


# -- reproducibility --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def uncached(demo_root):
    """The session's vae trial config, run twice without a cache."""
    return [run_trial(tiny_config(demo_root, method="vae"), log=quiet) for _ in range(2)]


def test_same_config_and_seed_twice_give_identical_metrics(uncached):
    assert uncached[0]["metrics"] == uncached[1]["metrics"]
    assert uncached[0]["confusion"] == uncached[1]["confusion"]


def test_cached_stages_give_the_same_metrics_as_computing_them(uncached, trials):
    assert trials["vae"][0]["metrics"] == uncached[0]["metrics"]


def test_without_a_cache_every_stage_is_computed(uncached):
    assert not any(info["hit"] for info in uncached[0]["cache"].values())


def test_fsvae_imports_neither_ray_optuna_mlflow_nor_study():
    package = REPO / "fsvae"
    imported = set()
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split(".")[0])
    assert "torch" in imported  # the scan sees imports
    assert not imported & {"ray", "optuna", "mlflow", "study", "results"}


# -- bad inputs -------------------------------------------------------------------------------


def test_trial_without_data_raises_trial_error():
    with pytest.raises(TrialError, match="'data' is required"):
        run_trial({"method": "plain"}, log=quiet)


def test_load_size_below_image_size_raises_trial_error(demo_root):
    with pytest.raises(TrialError, match="load_size=12 is smaller than image_size=16"):
        run_trial(tiny_config(demo_root, load_size=12), log=quiet)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda_raises_trial_error(demo_root):
    with pytest.raises(TrialError, match="device='cuda'.*not available"):
        run_trial(tiny_config(demo_root, device="cuda"), log=quiet)


@pytest.mark.parametrize("weights", ["missing.pth", "."])
def test_backbone_weights_that_is_not_a_file_raises_backbone_error_naming_it(
    demo_root, tmp_path, weights
):
    path = str(tmp_path / weights)
    with pytest.raises(BackboneError, match=re.escape(f"backbone_weights='{path}'") + ".*no such"):
        run_trial(tiny_config(demo_root, backbone_weights=path), log=quiet)


def test_n_f_above_the_available_images_fails_the_trial_with_split_error(demo_root):
    with pytest.raises(SplitError, match="n_f=50"):
        run_trial(tiny_config(demo_root, n_f=50), log=quiet)
