"""Train and eval transforms, in one place, on batches of uint8 tensors (CPU or GPU).

Images are decoded once to (N, 3, S, S) uint8 (fsvae.data). Per batch, on the device that
trains: random resized crop (scale 0.35-1, aspect 3/4-4/3) and horizontal flip as one
affine grid_sample, then ImageNet normalisation; eval takes the centre crop. No PIL in the
training loop, so the GPU is not waiting on CPU decoding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CROP_SCALE = (0.35, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


def normalize(x_uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, device=x_uint8.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(STD, device=x_uint8.device).view(1, 3, 1, 1) * 255
    return (x_uint8.float() - mean) / std


def eval_batch(x_uint8: torch.Tensor, size: int) -> torch.Tensor:
    """Centre crop `size` from the stored square, normalised."""
    s = x_uint8.shape[-1]
    o = (s - size) // 2
    return normalize(x_uint8[..., o : o + size, o : o + size])


def train_batch(
    x_uint8: torch.Tensor, size: int, generator: torch.Generator, augment: str = "standard"
) -> torch.Tensor:
    """Random resized crop + horizontal flip, one batched affine resample, normalised."""
    if augment == "none":
        return eval_batch(x_uint8, size)
    b, dev = x_uint8.shape[0], x_uint8.device
    u = torch.rand(b, 5, generator=generator, device=generator.device).to(dev)
    area = CROP_SCALE[0] + (CROP_SCALE[1] - CROP_SCALE[0]) * u[:, 0]
    log_r = math.log(CROP_RATIO[0]) + (math.log(CROP_RATIO[1]) - math.log(CROP_RATIO[0])) * u[:, 1]
    ratio = torch.exp(log_r)
    # Half-extents of the crop in normalised [-1, 1] coordinates of the stored square.
    w = torch.sqrt(area * ratio).clamp(max=1.0)
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (1 - w) * (2 * u[:, 2] - 1)
    cy = (1 - h) * (2 * u[:, 3] - 1)
    flip = torch.where(u[:, 4] < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)
    x = normalize(x_uint8)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
