"""fsvae.packaged: a trial's model as one torch module, assembled from the trial's model/
folder and its stage-cache entries, predicting as the trial evaluated its test images."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from fsvae import metrics, packaged, split
from fsvae.trial import run_trial
from helpers import TINY, quiet, tiny_config


def pixels_of_test(ds):
    """The trial's test images (decoded as the trial decodes them) and their split."""
    sp = split.gfsl_split(ds, TINY["n_f"], 5, 0)
    return ds.images[sp.test], sp


def confusion_on_test(model, ds) -> list[list[int]]:
    pixels, sp = pixels_of_test(ds)
    with torch.no_grad():
        preds = model(pixels).argmax(1)
    return metrics.compute(ds.labels[sp.test], preds, sp.minority, ds.classes)[1]


@pytest.fixture(scope="module")
def more_trials(demo_root, stage_cache, tmp_path_factory):
    """method -> (result, out_dir) for the stage-3 inputs the session's trials do not use:
    [x, x] rows, a shifted head, z drawn at test time. Their backbone comes from the cache."""
    out = {}
    for name, keys in {
        "noise": {"method": "noise"},
        "logit_adjust": {"method": "logit_adjust"},
        "vae_mean": {"method": "vae_mean"},
        "vae_sample": {"method": "vae", "z_test": "sample"},
    }.items():
        folder = tmp_path_factory.mktemp(f"trial-{name}")
        result = run_trial(
            tiny_config(demo_root, **keys), out_dir=folder, cache=stage_cache, log=quiet
        )
        out[name] = (result, folder)
    return out


def test_a_vae_trial_writes_its_model_json_and_classifier(trials):
    result, out = trials["vae"]
    spec = json.loads((out / "model" / "model.json").read_text())
    assert spec["method"] == "vae" and spec["classes"] == result["classes"]
    assert spec["minority_classes"] == result["minority_classes"]
    assert spec["cache"] == {s: result["cache"][s]["key"] for s in ("backbone", "vae")}
    assert (spec["image_size"], spec["load_size"], spec["z_test"]) == (16, 18, "mean")
    part = torch.load(out / "model" / "head.pt", weights_only=True)
    assert set(part) == {"scaler", "head"}
    assert part["scaler"]["low"].shape == part["scaler"]["high"].shape


def test_a_plain_trial_writes_no_classifier_its_backbone_head_classifies(trials):
    result, out = trials["plain"]
    assert sorted(p.name for p in (out / "model").iterdir()) == ["model.json"]
    spec = json.loads((out / "model" / "model.json").read_text())
    assert spec["cache"] == {"backbone": result["cache"]["backbone"]["key"]}


@pytest.mark.parametrize("method", ["plain", "oversample", "vae"])
def test_assembled_model_reproduces_the_trials_test_confusion(
    trials, stage_cache, demo_ds, tmp_path, method
):
    result, out = trials[method]
    model = packaged.assemble(out / "model", stage_cache.root, tmp_path / "model")
    assert confusion_on_test(model, demo_ds) == result["confusion"]["test"]


@pytest.mark.parametrize("name", ["noise", "logit_adjust", "vae_mean", "vae_sample"])
def test_assembled_model_reproduces_the_test_confusion_of_other_inputs(
    more_trials, stage_cache, demo_ds, tmp_path, name
):
    result, out = more_trials[name]
    model = packaged.assemble(out / "model", stage_cache.root, tmp_path / "model")
    assert confusion_on_test(model, demo_ds) == result["confusion"]["test"]


def test_model_outputs_class_probabilities_in_the_order_of_its_class_names(
    trials, stage_cache, demo_ds, tmp_path
):
    result, out = trials["vae"]
    model = packaged.assemble(out / "model", stage_cache.root, tmp_path / "model")
    pixels, _ = pixels_of_test(demo_ds)
    with torch.no_grad():
        probs = model(pixels)
    assert model.classes == result["classes"] == demo_ds.classes
    assert probs.shape == (len(pixels), len(model.classes))
    assert torch.allclose(probs.sum(1), torch.ones(len(pixels)))


def test_an_assembled_model_loads_without_the_stage_cache(trials, stage_cache, demo_ds, tmp_path):
    result, out = trials["vae"]
    cache = shutil.copytree(stage_cache.root, tmp_path / "cache")
    packaged.assemble(out / "model", cache, tmp_path / "model")
    shutil.rmtree(cache)
    model = packaged.load(tmp_path / "model")
    assert confusion_on_test(model, demo_ds) == result["confusion"]["test"]


def test_assembly_without_the_backbone_entry_names_the_stage_key_and_cache(trials, tmp_path):
    result, out = trials["vae"]
    key = result["cache"]["backbone"]["key"]
    with pytest.raises(
        packaged.MissingEntry, match=f"backbone entry {key} is not in the stage cache {tmp_path}"
    ) as err:
        packaged.assemble(out / "model", tmp_path, tmp_path / "model")
    assert (err.value.stage, err.value.key) == ("backbone", key)
    assert not (tmp_path / "model").exists()


def test_loading_a_folder_without_model_json_names_the_folder(tmp_path):
    with pytest.raises(packaged.ModelError, match=f"no model.json in {tmp_path}"):
        packaged.load(tmp_path)
