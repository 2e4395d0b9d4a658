"""fsvae.backbone: stage 1's epochs (minority oversampling), the epoch it keeps, and the
feature extraction that stages 2 and 3 read.

A real `Backbone` with a small trunk built here stands in for the ResNet: the code under
test is the training loop and the extraction, not torchvision's model.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from fsvae import backbone
from fsvae.config import resolve

CPU = torch.device("cpu")
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def stage1_config(**overrides) -> dict:
    return resolve(
        {
            "image_size": 8,
            "backbone_batch_size": 8,
            "backbone_epochs": 2,
            "augment": "none",
            "device": "cpu",
            "precision": "fp32",
            "channels_last": "off",
            **overrides,
        }
    )


def pooled_trunk() -> nn.Module:
    """Global average pool: a feature per channel, no parameters of its own."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_oversample_shows_each_minority_train_image_sampling_factor_times_per_epoch():
    # Image i is filled with the value i, so the trunk's input names the row it came from.
    labels = torch.tensor([0] * 6 + [1] * 6 + [2] * 2 + [3] * 2 + [0, 1, 2, 3])
    images = (
        torch.arange(len(labels), dtype=torch.uint8)
        .view(-1, 1, 1, 1)
        .expand(-1, 3, 8, 8)
        .contiguous()
    )
    train_idx, val_idx = torch.arange(16), torch.arange(16, 20)
    torch.manual_seed(0)
    model = backbone.Backbone(pooled_trunk(), 3, 4)
    seen: list[torch.Tensor] = []

    def record(module, inputs):
        if module.training:  # training steps only, not the validation extraction
            pixel = inputs[0][:, 0, 0, 0] * STD[0, 0, 0, 0] + MEAN[0, 0, 0, 0]
            seen.append(torch.round(pixel * 255).long())

    model.trunk.register_forward_pre_hook(record)
    cfg = stage1_config(backbone_epochs=2, backbone_batch_size=7)
    backbone.train(
        model,
        images,
        labels,
        train_idx,
        val_idx,
        [2, 3],
        list("abcd"),
        cfg,
        oversample=5,
        device=CPU,
        progress=lambda row: None,
    )
    rows = torch.cat(seen)
    # 12 majority rows once + 4 minority rows x5 = 32 rows per epoch, 5 steps of 7 (the
    # last one 4), two epochs.
    assert len(rows) == 2 * 32
    for epoch in rows.split(32):
        counts = torch.bincount(epoch, minlength=20)
        assert counts[:12].tolist() == [1] * 12
        assert counts[12:16].tolist() == [5] * 4
        assert counts[16:].tolist() == [0] * 4  # validation images are never trained on


def noisy_trunk() -> nn.Module:
    """A trunk whose train mode differs from its eval mode: BatchNorm and Dropout."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def test_extract_is_an_eval_mode_forward_of_the_centre_crop():
    torch.manual_seed(0)
    model = backbone.Backbone(noisy_trunk(), 4, 3)
    images = torch.randint(0, 256, (5, 3, 12, 12), dtype=torch.uint8)
    model(torch.randn(5, 3, 8, 8))  # a train-mode pass moves BatchNorm's running statistics
    cfg = stage1_config(image_size=8)
    idx = torch.tensor([4, 0, 2])
    first = backbone.extract(model, images, idx, cfg, CPU)
    second = backbone.extract(model, images, idx, cfg, CPU)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert model.training  # extraction leaves the mode it found
    crop = images[idx][..., 2:10, 2:10].float() / 255  # the centre 8 of 12
    model.eval()
    with torch.no_grad():
        x, logits = model((crop - MEAN) / STD)
    assert torch.allclose(first[0], x, atol=1e-5) and torch.allclose(first[1], logits, atol=1e-5)


def test_training_keeps_the_weights_of_the_epoch_with_the_best_validation_accuracy():
    # Two classes of flat images, dark (0) and light (1), which one epoch learns. The two
    # validation images are labelled light, dark; after each epoch (progress runs after its
    # validation) the test shows the next epoch a light and a dark image: in that order
    # before epoch 2, so that only epoch 2 is right on both, and swapped before the others.
    labels = torch.tensor([0] * 8 + [1] * 8 + [1, 0])
    values = torch.tensor([30] * 8 + [220] * 8 + [30, 220], dtype=torch.uint8)
    images = values.view(-1, 1, 1, 1).expand(-1, 3, 8, 8).contiguous()
    torch.manual_seed(0)
    model = backbone.Backbone(pooled_trunk(), 3, 2)
    weights: list[dict] = []

    def after_epoch(row: dict) -> None:
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
        shown = (220, 30) if row["epoch"] + 1 == 2 else (30, 220)
        images[16:] = torch.tensor(shown, dtype=torch.uint8).view(2, 1, 1, 1)

    cfg = stage1_config(backbone_epochs=4, backbone_lr=0.5)
    kept, history = backbone.train(
        model,
        images,
        labels,
        torch.arange(16),
        torch.arange(16, 18),
        [1],
        ["dark", "light"],
        cfg,
        oversample=1,
        device=CPU,
        progress=after_epoch,
    )
    assert [row["val_acc"] for row in history[:-1]] == [0.0, 0.0, 1.0, 0.0]
    assert history[-1] == {"stage": "backbone", "best_epoch": 2}
    assert all(torch.equal(v, weights[2][k]) for k, v in kept.state_dict().items())
    assert not all(torch.equal(v, weights[3][k]) for k, v in kept.state_dict().items())
