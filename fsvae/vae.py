"""Stage 2: a beta-VAE on the frozen backbone features (paper Sec. 3.2).

Architecture (not in the paper): CADA-VAE's image VAE, x -> 1560 -> (mu, logvar) and
z -> 1660 -> x, ReLU; sizes are config keys. Inputs are min-max scaled to [0, 1] per
dimension with the training features' range (CADA-VAE; MinMax says what happens to a
constant dimension and to held-out values outside that range).
Loss per sample = reconstruction (L1 or squared error, *summed* over the feature dims)
+ beta * KL(q(z|x) || N(0, I)) (*summed* over the latent dims); the batch loss is the
*mean* over samples. beta's absolute value only means something with these reductions:
with 2048 summed L1 terms the paper's beta_max = 5.04e-4 makes the KL a weak regulariser.
The VAE has no accuracy to select on and its loss is not comparable across epochs while
beta moves, so the last epoch is kept.
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

from fsvae.errors import NonFiniteLoss


class BetaVAE(nn.Module):
    def __init__(self, input_dim: int, latent_dim: int, enc_hidden: int, dec_hidden: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(input_dim, enc_hidden), nn.ReLU())
        self.mu = nn.Linear(enc_hidden, latent_dim)
        self.logvar = nn.Linear(enc_hidden, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, dec_hidden), nn.ReLU(), nn.Linear(dec_hidden, input_dim)
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder(x)
        # Clamped so that exp() cannot overflow into a NaN loss on a bad learning rate.
        return self.mu(h), self.logvar(h).clamp(-30.0, 20.0)

    def sample(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ q(z|x), a fresh draw each call."""
        return reparameterize(*self.encode(x), generator)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        mu, logvar = self.encode(x)
        return self.decoder(reparameterize(mu, logvar, generator)), mu, logvar


def reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I) drawn afresh: the reparameterisation trick
    (Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014, Sec. 2.4)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device)
    return mu + eps * torch.exp(0.5 * logvar)


def beta_at(epoch: int, config: dict) -> float:
    """beta at a 0-based epoch for the configured schedule."""
    kind, beta_max = config["beta_schedule"], config["beta_max"]
    if kind == "constant":
        return beta_max
    if kind == "linear":
        # Paper: +5.6e-6 per epoch until epoch 90, then flat (beta_max = 90 * 5.6e-6).
        warm = config["beta_warmup_epochs"]
        return beta_max if warm == 0 else beta_max * min(epoch, warm) / warm
    if kind == "cyclical":
        # Fu et al. 2019: beta_cycles cycles; each rises linearly 0 -> beta_max over the first
        # beta_cycle_ratio of the cycle, then stays at beta_max until the cycle ends.
        period = config["vae_epochs"] / config["beta_cycles"]
        pos = (epoch % period) / period
        rise = config["beta_cycle_ratio"]
        return beta_max if rise == 0 else beta_max * min(pos / rise, 1.0)
    if kind == "sigmoid":
        mid = config["beta_midpoint"]
        mid = config["vae_epochs"] / 2 if mid is None else mid
        return beta_max / (1.0 + math.exp(-config["beta_steepness"] * (epoch - mid)))
    raise ValueError(f"unknown beta_schedule {kind!r}")


class MinMax:
    """Per-dimension min-max scaling to [0, 1], fitted on the training features (CADA-VAE).

    A dimension constant over the training rows (a dead ReLU channel) carries no information
    and maps to 0 everywhere: dividing by its zero range turned a val/test value of 0.01
    into 1e6. Held-out values outside the training range are clipped to [0, 1], the range
    the VAE and the classifier are trained on (as scikit-learn's MinMaxScaler(clip=True)),
    so that no single dimension of an unseen row can swamp the logits.
    """

    CONSTANT = 1e-8  # a training range at most this wide counts as constant

    def __init__(self, low: torch.Tensor, high: torch.Tensor):
        self.low, self.high = low, high

    @classmethod
    def fit(cls, x: torch.Tensor) -> MinMax:
        return cls(x.min(0).values, x.max(0).values)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        low, high = self.low.to(x.device), self.high.to(x.device)
        span = high - low
        constant = span <= self.CONSTANT
        scaled = (x - low) / torch.where(constant, torch.ones_like(span), span)
        return torch.where(constant, torch.zeros_like(scaled), scaled).clamp(0.0, 1.0)

    def state(self) -> dict:
        return {"low": self.low, "high": self.high}


def scale_features(features: dict[str, dict]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Stage 1's features[split] = {"x", "y", ...} -> split: (min-max scaled x, y), the
    scaler fitted on the train split alone: the input of stages 2 and 3."""
    scaler = MinMax.fit(features["train"]["x"])
    return {split: (scaler(f["x"]), f["y"]) for split, f in features.items()}


def losses(
    model: BetaVAE, x: torch.Tensor, recon_kind: str, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-batch mean of (reconstruction summed over dims, KL summed over latent dims)."""
    x_hat, mu, logvar = model(x, generator)
    if recon_kind == "l1":
        recon = (x_hat - x).abs().sum(1)
    else:
        recon = (x_hat - x).pow(2).sum(1)
    # KL(N(mu, sigma^2) || N(0, I)) in closed form (Kingma and Welling 2014, Appendix B).
    kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1)
    return recon.mean(), kl.mean()


def fit(
    x_train: torch.Tensor,
    x_val: torch.Tensor,
    config: dict,
    device: torch.device,
    progress: Callable[[dict], None],
) -> dict:
    """The whole stage, as the stage cache keeps it: {"model", "history"} of train()."""
    model, history = train(x_train, x_val, config, device, progress)
    return {"model": model, "history": history}


def train(
    x_train: torch.Tensor,
    x_val: torch.Tensor,
    config: dict,
    device: torch.device,
    progress: Callable[[dict], None],
) -> tuple[BetaVAE, list[dict]]:
    """Trains on already-scaled features; returns the last-epoch model and the history."""
    torch.manual_seed(config["seed"])
    model = BetaVAE(
        x_train.shape[1],
        config["latent_dim"],
        config["vae_encoder_hidden"],
        config["vae_decoder_hidden"],
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config["vae_lr"], amsgrad=True)
    gen = torch.Generator(device=device).manual_seed(config["seed"] + 1)
    x_train, x_val = x_train.to(device), x_val.to(device)
    n, bs = len(x_train), config["vae_batch_size"]
    history = []
    for epoch in range(config["vae_epochs"]):
        t0 = time.perf_counter()
        beta = beta_at(epoch, config)
        model.train()
        perm = torch.randperm(n, generator=gen, device=device)
        sums = torch.zeros(2, device=device)
        for s in range(0, n, bs):
            xb = x_train[perm[s : s + bs]]
            recon, kl = losses(model, xb, config["vae_recon_loss"], gen)
            loss = recon + beta * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sums += torch.stack([recon.detach(), kl.detach()]) * len(xb)
        model.eval()
        with torch.no_grad():
            v_recon, v_kl = losses(model, x_val, config["vae_recon_loss"], gen)
        recon_m, kl_m, v_recon, v_kl = torch.cat(
            [sums / n, torch.stack([v_recon, v_kl])]
        ).tolist()  # one host sync per epoch
        if not (math.isfinite(recon_m) and math.isfinite(kl_m)):
            raise NonFiniteLoss(
                f"VAE loss is not finite at epoch {epoch} (reconstruction {recon_m}, KL {kl_m})"
            )
        row = {
            "stage": "vae",
            "epoch": epoch,
            "beta": beta,
            "recon": recon_m,
            "kl": kl_m,
            "loss": recon_m + beta * kl_m,
            "val_recon": v_recon,
            "val_kl": v_kl,
            "seconds": time.perf_counter() - t0,
        }
        history.append(row)
        progress(row)
    return model.eval(), history


def save(stage: dict, folder: Path) -> None:
    """Writes fit()'s output as a cache entry: vae.pt (sizes and weights), history.json."""
    m = stage["model"]
    dims = {
        "input_dim": m.decoder[-1].out_features,
        "latent_dim": m.mu.out_features,
        "enc_hidden": m.mu.in_features,
        "dec_hidden": m.decoder[0].out_features,
    }
    torch.save(
        {"dims": dims, "state": {k: t.cpu() for k, t in m.state_dict().items()}}, folder / "vae.pt"
    )
    (folder / "history.json").write_text(json.dumps(stage["history"]))


def restore(folder: Path) -> dict:
    """A cache entry back as fit()'s output, the model on the CPU in eval mode."""
    saved = torch.load(folder / "vae.pt", map_location="cpu", weights_only=True)
    model = BetaVAE(**saved["dims"])
    model.load_state_dict(saved["state"])
    return {"model": model.eval(), "history": json.loads((folder / "history.json").read_text())}
