"""Stage 3: one FC layer on frozen features (paper Sec. 3.3), and the ablations.

The paper's classifier (`vae`) sees concat[x, z], z ~ q(z|x) drawn afresh for every row in
every epoch, with minority rows repeated `sampling_factor` times; SGD, 10 epochs, the epoch
with the best validation `selection_metric` kept. The other methods change one thing each
(docs/ablations.md):
  crt               concat -> x alone, same repetition (classifier re-training, Kang et al. 2020)
  vae_mean          z -> mu, no sampling noise
  noise             z -> x + N(0, noise_std^2): noise that knows nothing of the VAE
  logit_adjust      x alone, no repetition; at prediction subtract tau*log(train prior)
                    (Menon et al. 2021, post-hoc)
  balanced_softmax  x alone, no repetition; training logits + log(class counts) (Ren et al. 2020)
  cb_loss           x alone, no repetition; CE weights (1-b)/(1-b^n_c), normalised to sum to
                    the number of classes (Cui et al. 2019)
x is the min-max-scaled feature (the VAE's input) for every method, so they differ only in
what the table says. Val/test rows: z = mu (`z_test=mean`, CADA-VAE) or one seeded sample;
`noise` uses x itself (the noise's mean).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from fsvae import metrics, sampler
from fsvae.config import RESAMPLING_METHODS
from fsvae.errors import NonFiniteLoss
from fsvae.vae import BetaVAE


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return torch.bincount(labels, minlength=num_classes).float()


def cb_weights(counts: torch.Tensor, beta: float) -> torch.Tensor:
    """Cui et al. 2019: w_c = (1-b)/(1-b^n_c), normalised to sum to the number of classes."""
    w = (1 - beta) / (1 - torch.pow(torch.tensor(beta, dtype=torch.float64), counts.double()))
    w = torch.where(counts > 0, w, torch.zeros_like(w))
    return (w / w.sum() * (counts > 0).sum()).float()


class Head(nn.Module):
    """The stage-3 classifier as it predicts: one FC layer, then a fixed shift of the logits
    (-tau*log prior for logit_adjust, zero for every other method)."""

    shift: torch.Tensor  # a buffer

    def __init__(self, in_dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, num_classes)
        self.register_buffer("shift", torch.zeros(num_classes))

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.fc(rows) + self.shift


class Inputs:
    """Builds the classifier's input rows for one method. The vae and vae_mean methods need
    the VAE; `generator` may be None where only eval_rows is used."""

    def __init__(
        self, method: str, vae: BetaVAE | None, config: dict, generator: torch.Generator | None
    ):
        self.method, self.vae, self.config, self.gen = method, vae, config, generator

    def _vae(self) -> BetaVAE:
        if self.vae is None:
            raise ValueError(f"method {self.method!r} needs a VAE")
        return self.vae

    def dim(self, x_dim: int) -> int:
        if self.method in ("vae", "vae_mean"):
            return x_dim + self.config["latent_dim"]
        if self.method == "noise":
            return 2 * x_dim
        return x_dim

    @torch.no_grad()
    def train_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Fresh z (or noise) for every row, each call."""
        if self.method == "vae":
            return torch.cat([x, self._vae().sample(x, self.gen)], 1)
        if self.method == "vae_mean":
            return torch.cat([x, self._vae().encode(x)[0]], 1)
        if self.method == "noise":
            eps = torch.randn(x.shape, generator=self.gen, device=x.device)
            return torch.cat([x, x + self.config["noise_std"] * eps], 1)
        return x

    @torch.no_grad()
    def eval_rows(self, x: torch.Tensor) -> torch.Tensor:
        if self.method == "vae":
            if self.config["z_test"] == "sample":
                gen = torch.Generator(device=x.device).manual_seed(self.config["seed"] + 2)
                return torch.cat([x, self._vae().sample(x, gen)], 1)
            return torch.cat([x, self._vae().encode(x)[0]], 1)
        if self.method == "vae_mean":
            return torch.cat([x, self._vae().encode(x)[0]], 1)
        if self.method == "noise":
            return torch.cat([x, x], 1)
        return x


def train(
    feats: dict[str, tuple[torch.Tensor, torch.Tensor]],
    minority: list[int],
    classes: list[str],
    config: dict,
    vae: BetaVAE | None,
    device: torch.device,
    progress: Callable[[dict], None],
) -> tuple[dict[str, torch.Tensor], list[dict], Head]:
    """feats: split -> (scaled x, labels). Returns the val/test predictions of the best
    epoch, the epochs' history, and the head of the best epoch (on the CPU)."""
    method, k = config["method"], len(classes)
    gen = torch.Generator(device=device).manual_seed(config["seed"] + 3)
    torch.manual_seed(config["seed"] + 3)
    x_tr, y_tr = (t.to(device) for t in feats["train"])
    evals = {s: (feats[s][0].to(device), feats[s][1]) for s in ("val", "test")}
    inputs = Inputs(method, vae, config, gen)
    head = Head(inputs.dim(x_tr.shape[1]), k).to(device)
    opt = torch.optim.SGD(
        head.fc.parameters(),
        lr=config["classifier_lr"],
        momentum=config["classifier_momentum"],
        weight_decay=config["classifier_weight_decay"],
    )
    factor = config["sampling_factor"] if method in RESAMPLING_METHODS else 1
    rows = sampler.repeat_minority(y_tr, minority, factor)
    counts = class_counts(y_tr, k).to(device)
    log_prior = torch.log(counts.clamp(min=1) / counts.sum())
    train_shift = torch.log(counts.clamp(min=1)) if method == "balanced_softmax" else None
    if method == "logit_adjust":
        head.shift.copy_(-config["tau"] * log_prior)  # at prediction only
    weight = cb_weights(counts.cpu(), config["cb_beta"]).to(device) if method == "cb_loss" else None
    eval_x = {s: inputs.eval_rows(x) for s, (x, _) in evals.items()}
    bs = config["classifier_batch_size"]
    best: dict[str, torch.Tensor] | None = None
    best_score, history = -1.0, []
    for epoch in range(config["classifier_epochs"]):
        t0 = time.perf_counter()
        x_epoch = inputs.train_rows(x_tr[rows])  # fresh z for each (repeated) row
        y_epoch = y_tr[rows]
        perm = torch.randperm(len(rows), generator=gen, device=device)
        sums = torch.zeros(2, device=device)
        for s in range(0, len(rows), bs):
            idx = perm[s : s + bs]
            logits = head.fc(x_epoch[idx])
            if train_shift is not None:
                logits = logits + train_shift
            loss = F.cross_entropy(logits, y_epoch[idx], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += torch.stack(
                [loss.detach() * len(idx), (logits.argmax(1) == y_epoch[idx]).sum().float()]
            )
        with torch.no_grad():
            preds = {s: head(x).argmax(1).cpu() for s, x in eval_x.items()}
        train_loss, train_acc = (sums / len(rows)).tolist()
        if not math.isfinite(train_loss):
            raise NonFiniteLoss(f"classifier loss is {train_loss} at epoch {epoch}")
        val, _ = metrics.compute(evals["val"][1], preds["val"], minority, classes)
        row = {
            "stage": "classifier",
            "epoch": epoch,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "val_acc": val["acc"],
            "val_acc_h": val["acc_h"],
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        progress(row)
        score = val[config["selection_metric"]]
        if score > best_score:
            best_score, best = score, preds
            best_state = {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}
    best_epoch = max(history, key=lambda r: r["val_" + config["selection_metric"]])["epoch"]
    history.append({"stage": "classifier", "best_epoch": best_epoch})
    if best is None:
        raise RuntimeError("no classifier epoch had a validation score")
    head = head.cpu()
    head.load_state_dict(best_state)
    return best, history, head.eval()
