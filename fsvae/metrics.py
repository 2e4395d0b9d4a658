"""acc, acc_majority, acc_minority, acc_h: the paper's Table 2 metrics (docs/method.md#metrics).

Group accuracies follow CADA-VAE (Schonfeld et al. 2019), the source of acc_h: the mean of
per-class accuracies within the group, predictions an argmax over all classes. The
sample-weighted variants are reported as *_samples. acc_h = 2*maj*min/(maj+min), 0 when
both are 0. Classes with no sample in the evaluated set are left out of the means.
"""

from __future__ import annotations

import torch


def harmonic(a: float, b: float) -> float:
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def confusion(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts; row = true class, column = prediction."""
    idx = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(idx, minlength=num_classes**2).reshape(num_classes, num_classes)


def compute(
    y_true: torch.Tensor,
    y_pred: torch.Tensor,
    minority: list[int],
    classes: list[str],
    prefix: str = "",
) -> tuple[dict, list[list[int]]]:
    """Scalar metrics (keys prefixed) and the confusion matrix as nested lists."""
    y_true, y_pred = y_true.cpu(), y_pred.cpu()
    k = len(classes)
    cm = confusion(y_true, y_pred, k)
    support = cm.sum(1)
    correct = cm.diag()
    present = support > 0
    per_class = torch.where(present, correct / support.clamp(min=1), torch.nan)
    is_min = torch.zeros(k, dtype=torch.bool)
    is_min[list(minority)] = True

    def group(mask: torch.Tensor) -> tuple[float, float]:
        mask = mask & present
        if not mask.any():
            return 0.0, 0.0
        mean_of_classes = per_class[mask].mean().item()
        samples = (correct[mask].sum() / support[mask].sum()).item()
        return mean_of_classes, samples

    maj, maj_s = group(~is_min)
    mnr, mnr_s = group(is_min)
    out = {
        "acc": (correct.sum() / max(1, support.sum().item())).item(),
        "acc_majority": maj,
        "acc_minority": mnr,
        "acc_h": harmonic(maj, mnr),
        "acc_majority_samples": maj_s,
        "acc_minority_samples": mnr_s,
        "acc_h_samples": harmonic(maj_s, mnr_s),
        "acc_mean_class": per_class[present].mean().item() if present.any() else 0.0,
    }
    for c, name in enumerate(classes):
        if present[c]:
            out[f"class_acc/{name}"] = per_class[c].item()
    return {prefix + key: value for key, value in out.items()}, cm.tolist()
