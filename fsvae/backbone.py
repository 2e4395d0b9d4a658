"""Stage 1: fine-tune a torchvision backbone (paper: ImageNet ResNet-50, 50 epochs, SGD).

The pooled feature x (2048-d for ResNet-50) feeds stages 2 and 3; the backbone's own FC
head is the `plain` and `oversample` baselines' classifier. The epoch with the best
validation `selection_metric` (paper: acc) is kept. On CUDA: bf16 autocast, channels_last,
the whole uint8 image tensor on the GPU, optional torch.compile.
`fit` is the whole stage as the stage cache keeps it; `save` and `restore` its entry.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from fsvae import metrics, sampler, transforms
from fsvae.errors import (
    BackboneError,  # noqa: F401  (re-exported)
    NonFiniteLoss,
)


class Backbone(nn.Module):
    """trunk(x) -> pooled features; head(features) -> logits."""

    def __init__(self, trunk: nn.Module, feature_dim: int, num_classes: int):
        super().__init__()
        self.trunk = trunk
        self.feature_dim = feature_dim
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.trunk(x)
        return f, self.head(f)


def build(name: str, weights: str, num_classes: int) -> Backbone:
    """`weights`: imagenet | none | path to a local checkpoint (a state_dict)."""
    # Imported here, not at the top: torchvision.models pulls in torch._dynamo (~1.5 s),
    # which a trial whose backbone comes from the cache never needs.
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise BackboneError(
            f"backbone {name!r} is not a torchvision classification model "
            f"(e.g. resnet50, resnet18, convnext_tiny)"
        )
    if weights == "imagenet":
        model = _imagenet(name)
    else:
        model = torchvision.models.get_model(name, weights=None)
        if weights != "none":
            _load_checkpoint(model, Path(weights), name)
    trunk, dim = _strip_head(model, name)
    return Backbone(trunk, dim, num_classes)


def _imagenet(name: str) -> nn.Module:
    import torchvision

    try:
        w = torchvision.models.get_model_weights(name).DEFAULT
    except ValueError as e:
        raise BackboneError(f"torchvision has no ImageNet weights for {name!r}: {e}") from None
    try:
        return torchvision.models.get_model(name, weights=w)
    except Exception as e:  # no network: URLError, OSError, RuntimeError, depending on where
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(w.url).name
        raise BackboneError(
            f"backbone_weights=imagenet: could not load {w} for {name} ({type(e).__name__}: "
            f"{e}). Without network access, put the file at {cache}, or set "
            f"backbone_weights=/path/to/checkpoint.pth (a state_dict), or "
            f"backbone_weights=none (random initialisation)."
        ) from None


def _load_checkpoint(model: nn.Module, path: Path, name: str) -> None:
    if not path.is_file():
        raise BackboneError(
            f"backbone_weights={str(path)!r}: no such file; expected imagenet, "
            f"none, or a path to a checkpoint (a state_dict)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise BackboneError(
            f"backbone_weights={str(path)!r}: not a loadable torch "
            f"checkpoint ({type(e).__name__}: {e})"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise BackboneError(
            f"backbone_weights={str(path)!r}: expected a state_dict, got {type(state).__name__}"
        )
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    trunk_keys = [k for k in own if not _is_head_key(k)]
    if not any(k in usable for k in trunk_keys):
        raise BackboneError(
            f"backbone_weights={str(path)!r}: no parameter matches a {name}; "
            f"is it a checkpoint of another architecture?"
        )
    model.load_state_dict(usable, strict=False)


def _is_head_key(key: str) -> bool:
    return key.startswith(("fc.", "classifier.", "heads."))


def _strip_head(model: nn.Module, name: str) -> tuple[nn.Module, int]:
    """Replaces the final Linear of a torchvision classifier by Identity."""
    for attr in ("fc", "classifier", "heads"):
        head = getattr(model, attr, None)
        if head is None:
            continue
        if isinstance(head, nn.Linear):
            setattr(model, attr, nn.Identity())
            return model, head.in_features
        if isinstance(head, nn.Sequential):
            for i in range(len(head) - 1, -1, -1):
                layer = head[i]
                if isinstance(layer, nn.Linear):
                    head[i] = nn.Identity()
                    return model, layer.in_features
    raise BackboneError(f"backbone {name!r}: cannot find its final Linear layer")


def settings(config: dict, device: torch.device) -> dict:
    """Resolved precision / memory-format choices for this device."""
    cuda = device.type == "cuda"
    prec = config["precision"]
    bf16 = (prec == "bf16") or (prec == "auto" and cuda)
    cl = config["channels_last"]
    return {
        "bf16": bf16,
        "channels_last": cl == "on" or (cl == "auto" and cuda),
        "compile": bool(config["compile"]),
    }


def fit(
    images: torch.Tensor,
    labels: torch.Tensor,
    rows: dict[str, torch.Tensor],
    minority: list[int],
    classes: list[str],
    config: dict,
    oversample: int,
    device: torch.device,
    progress: Callable[[dict], None],
) -> dict:
    """The whole stage, as the stage cache keeps it: a backbone built from `config`,
    fine-tuned on images[rows["train"]] (rows["val"] picks the epoch), and the features and
    logits of every split in `rows`. Returns {"state", "features", "history"}, where
    features[split] = {"x", "y", "logits"}."""
    torch.manual_seed(config["seed"])  # the new head's (and an untrained trunk's) weights
    model = build(config["backbone"], config["backbone_weights"], len(classes))
    model, history = train(
        model,
        images,
        labels,
        rows["train"],
        rows["val"],
        minority,
        classes,
        config,
        oversample,
        device,
        progress,
    )
    features = {}
    for split, idx in rows.items():
        x, logits = extract(model, images, idx, config, device)
        features[split] = {"x": x, "y": labels[idx], "logits": logits}
    return {
        "state": {k: v.cpu() for k, v in model.state_dict().items()},
        "features": features,
        "history": history,
    }


def train(
    model: Backbone,
    images: torch.Tensor,
    labels: torch.Tensor,
    train_idx: torch.Tensor,
    val_idx: torch.Tensor,
    minority: list[int],
    classes: list[str],
    config: dict,
    oversample: int,
    device: torch.device,
    progress: Callable[[dict], None],
) -> tuple[Backbone, list[dict]]:
    """Fine-tunes `model`; returns it at the best epoch and the per-epoch history.

    `oversample`: times each minority training image appears per epoch (1 = plain).
    """
    opts = settings(config, device)
    mem = torch.channels_last if opts["channels_last"] else torch.contiguous_format
    # torch's overloads of Module.to leave out (device, memory_format=), which it accepts
    model = model.to(device, memory_format=mem)  # type: ignore[call-overload]
    images, labels = images.to(device), labels.to(device)
    step_model = torch.compile(model) if opts["compile"] else model
    train_idx = train_idx.to(device)
    order = train_idx[sampler.repeat_minority(labels[train_idx], minority, oversample)]
    bs = config["backbone_batch_size"]
    # A last batch of one image would break BatchNorm in train mode: drop it.
    n = len(order)
    steps_per_epoch = math.ceil(n / bs) - (1 if n % bs == 1 and n > bs else 0)
    total = steps_per_epoch * config["backbone_epochs"]
    opt = torch.optim.SGD(
        model.parameters(),
        lr=config["backbone_lr"],
        momentum=config["backbone_momentum"],
        weight_decay=config["backbone_weight_decay"],
    )
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total))
    )
    gen = torch.Generator(device=device).manual_seed(config["seed"])
    best: dict[str, torch.Tensor] | None = None
    best_score, history = -1.0, []
    for epoch in range(config["backbone_epochs"]):
        t0 = time.perf_counter()
        model.train()
        perm = order[torch.randperm(len(order), generator=gen, device=device)]
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        seen = 0
        for s in range(steps_per_epoch):
            idx = perm[s * bs : (s + 1) * bs]
            x = transforms.train_batch(images[idx], config["image_size"], gen, config["augment"])
            x = x.contiguous(memory_format=mem)
            y = labels[idx]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=opts["bf16"]):
                _, logits = step_model(x)
                loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(idx)
            correct += (logits.argmax(1) == y).sum()
            seen += len(idx)
        train_loss = (loss_sum / seen).item()  # one host sync per epoch
        train_seconds = time.perf_counter() - t0
        if not math.isfinite(train_loss):
            raise NonFiniteLoss(f"backbone training loss is {train_loss} at epoch {epoch}")
        _, val_logits = extract(model, images, val_idx, config, device)
        val, _ = metrics.compute(labels[val_idx].cpu(), val_logits.argmax(1), minority, classes)
        row = {
            "stage": "backbone",
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": (correct / seen).item(),
            "val_acc": val["acc"],
            "val_acc_h": val["acc_h"],
            "lr": sched.get_last_lr()[0],
            "images_per_s": seen / train_seconds,
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        progress(row)
        score = val[config["selection_metric"]]
        if score > best_score:
            best_score = score
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best is None:
        raise RuntimeError("no backbone epoch had a validation score")
    model.load_state_dict(best)
    best_epoch = max(history, key=lambda r: r["val_" + config["selection_metric"]])["epoch"]
    history.append({"stage": "backbone", "best_epoch": best_epoch})
    return model, history


@torch.no_grad()
def extract(
    model: Backbone, images: torch.Tensor, idx: torch.Tensor, config: dict, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled features and logits (float32, CPU) of images[idx], centre-cropped."""
    opts = settings(config, device)
    mem = torch.channels_last if opts["channels_last"] else torch.contiguous_format
    was_training = model.training
    model.eval()
    feats, logits = [], []
    bs = max(256, config["backbone_batch_size"] * 2)
    idx = idx.to(images.device)
    for s in range(0, len(idx), bs):
        x = transforms.eval_batch(images[idx[s : s + bs]].to(device), config["image_size"])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=opts["bf16"]):
            f, out = model(x.contiguous(memory_format=mem))
        feats.append(f.float())
        logits.append(out.float())
    model.train(was_training)
    return torch.cat(feats).cpu(), torch.cat(logits).cpu()


def save(stage: dict, folder: Path) -> None:
    """Writes fit()'s output as a cache entry: model.pt, features.pt, history.json."""
    torch.save(stage["state"], folder / "model.pt")
    torch.save(stage["features"], folder / "features.pt")
    (folder / "history.json").write_text(json.dumps(stage["history"]))


def restore(folder: Path) -> dict:
    """A cache entry back as fit()'s output; the weights stay on disk ("state": None): the
    later stages only need the features."""
    return {
        "state": None,
        "features": torch.load(folder / "features.pt", weights_only=True),
        "history": json.loads((folder / "history.json").read_text()),
    }
