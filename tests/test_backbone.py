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
    return resolve({"image_size": 8, "backbone_batch_size": 8, "backbone_epochs": 2,
                    "augment": "none", "device": "cpu", "precision": "fp32",
                    "channels_last": "off", **overrides})


def pooled_trunk() -> nn.Module:
    """Global average pool: a feature per channel, no parameters of its own."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_oversample_shows_each_minority_train_image_sampling_factor_times_per_epoch():
    # Image i is filled with the value i, so the trunk's input names the row it came from.
    labels = torch.tensor([0] * 6 + [1] * 6 + [2] * 2 + [3] * 2 + [0, 1, 2, 3])
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(
        -1, 3, 8, 8).contiguous()
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
    backbone.train(model, images, labels, train_idx, val_idx, [2, 3], list("abcd"), cfg,
                   oversample=5, device=CPU, progress=lambda row: None)
    rows = torch.cat(seen)
    # 12 majority rows once + 4 minority rows x5 = 32 rows per epoch, 5 steps of 7 (the
    # last one 4), two epochs.
    assert len(rows) == 2 * 32
    for epoch in rows.split(32):
        counts = torch.bincount(epoch, minlength=20)
        assert counts[:12].tolist() == [1] * 12
        assert counts[12:16].tolist() == [5] * 4
        assert counts[16:].tolist() == [0] * 4  # validation images are never trained on
