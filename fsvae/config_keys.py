"""Every config key, by name: its default, type, range, doc and the stage it belongs to.

The key names here are the project's vocabulary: the same names appear in search-space
YAML files, in `--set KEY=VALUE`, as MLflow params and as table columns.
Defaults are the paper's settings where the paper gives them (Park 2021, Sec. 3-4) and
documented choices where it does not (see docs/method.md). fsvae.config resolves a trial's
config from this registry and re-exports it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

METHODS = (
    "plain",  # ResNet-50 fine-tuned on the imbalanced set, its own FC head (Table 2)
    "oversample",  # ResNet-50 fine-tuned with minority images repeated x sampling_factor
    "vae",  # the paper: FC on concat[x, z], z ~ q(z|x), minority rows x sampling_factor
    "crt",  # ablation: FC on x alone, same oversampling (Kang et al. 2020)
    "vae_mean",  # ablation: FC on concat[x, mu], no sampling noise
    "noise",  # ablation: FC on concat[x, x + N(0, noise_std^2)]
    "logit_adjust",  # ablation: FC on x, subtract tau*log(prior) at test (Menon et al. 2021)
    "balanced_softmax",  # ablation: FC on x, add log class counts in training (Ren et al. 2020)
    "cb_loss",  # ablation: FC on x, class-balanced CE weights (Cui et al. 2019)
)
BACKBONE_METHODS = ("plain", "oversample")  # methods whose prediction is the backbone's head
VAE_METHODS = ("vae", "vae_mean")  # methods that train (and need) the beta-VAE
RESAMPLING_METHODS = ("oversample", "vae", "crt", "vae_mean", "noise")  # use sampling_factor
BETA_SCHEDULES = ("linear", "constant", "cyclical", "sigmoid")


@dataclass(frozen=True)
class Key:
    default: Any
    kind: type  # int, float, str, bool
    doc: str
    stage: str  # data | split | backbone | vae | classifier | run
    choices: tuple | None = None
    low: float | None = None  # inclusive lower bound
    high: float | None = None  # inclusive upper bound
    nullable: bool = False
    # Returns True when the key matters for this config (e.g. beta_cycles only with
    # beta_schedule=cyclical). Inactive keys are left out of MLflow params and cache keys.
    active: Callable[[dict], bool] = field(default=lambda c: True)


def _uses_vae(c: dict) -> bool:
    return c["method"] in VAE_METHODS


def _uses_classifier(c: dict) -> bool:
    return c["method"] not in BACKBONE_METHODS


def _schedule(name: str) -> Callable[[dict], bool]:
    return lambda c: _uses_vae(c) and c["beta_schedule"] == name


def _schedule_in(*names: str) -> Callable[[dict], bool]:
    return lambda c: _uses_vae(c) and c["beta_schedule"] in names


KEYS: dict[str, Key] = {
    # -- data ---------------------------------------------------------------------------
    "data": Key(
        None,
        str,
        "dataset root (FashionStyle14 layout or <split>/<class>/<file>)",
        "data",
        nullable=True,
    ),
    "layout": Key(
        "auto",
        str,
        "dataset layout: auto-detect, fashionstyle14 (train.csv...) "
        "or folders (<split>/<class>/<file>)",
        "data",
        choices=("auto", "fashionstyle14", "folders"),
    ),
    "load_size": Key(
        None,
        int,
        "side of the square uint8 images decoded once and kept "
        "(shorter side resized, centre square crop); default round(image_size*256/224)",
        "data",
        low=8,
        high=2048,
        nullable=True,
    ),
    "data_workers": Key(
        0,
        int,
        "processes decoding images (0: one per available core, max 16)",
        "run",
        low=0,
        high=256,
    ),
    # -- GFSL split -----------------------------------------------------------------------
    "n_f": Key(
        10,
        int,
        "images per minority class in train (and min(n_f, available) in val)",
        "split",
        low=1,
        high=100000,
    ),
    "num_minority": Key(
        5,
        int,
        "number of minority classes, chosen at random from `seed`",
        "split",
        low=1,
        high=1000,
    ),
    "seed": Key(
        0,
        int,
        "drives the minority classes, the n_f images, and all training randomness",
        "split",
        low=0,
        high=2**31 - 1,
    ),
    "method": Key(
        "vae",
        str,
        "what is trained and evaluated (see docs/method.md#methods)",
        "classifier",
        choices=METHODS,
    ),
    "sampling_factor": Key(
        30,
        int,
        "times each minority training row is repeated per epoch "
        "(oversample: images in stage 1; vae, crt, vae_mean, noise: rows "
        "in stage 3)",
        "classifier",
        low=1,
        high=100000,
        active=lambda c: c["method"] in RESAMPLING_METHODS,
    ),
    # -- stage 1: backbone ----------------------------------------------------------------
    "backbone": Key("resnet50", str, "torchvision classification model name", "backbone"),
    "backbone_weights": Key(
        "imagenet",
        str,
        "imagenet (torchvision's DEFAULT weights, "
        "downloaded or from the torch hub cache), none (random init), or "
        "a path to a local checkpoint (state_dict)",
        "backbone",
    ),
    "backbone_epochs": Key(50, int, "stage 1 epochs (paper: 50)", "backbone", low=1, high=10000),
    "backbone_lr": Key(
        0.01,
        float,
        "stage 1 SGD learning rate, cosine-annealed to 0 (not in the paper)",
        "backbone",
        low=0.0,
        high=10.0,
    ),
    "backbone_momentum": Key(0.9, float, "stage 1 SGD momentum", "backbone", low=0.0, high=1.0),
    "backbone_weight_decay": Key(
        1e-4, float, "stage 1 SGD weight decay", "backbone", low=0.0, high=1.0
    ),
    "backbone_batch_size": Key(64, int, "stage 1 batch size", "backbone", low=1, high=65536),
    "image_size": Key(
        224, int, "training/eval crop side in pixels (paper: 224)", "backbone", low=8, high=2048
    ),
    "augment": Key(
        "standard",
        str,
        "stage 1 augmentation: standard (random resized crop "
        "scale 0.35-1, horizontal flip) or none (centre crop)",
        "backbone",
        choices=("standard", "none"),
    ),
    "precision": Key(
        "auto",
        str,
        "auto: bf16 autocast on CUDA, fp32 on CPU; or fp32, bf16",
        "run",
        choices=("auto", "fp32", "bf16"),
    ),
    "channels_last": Key("auto", str, "auto: on for CUDA", "run", choices=("auto", "on", "off")),
    "compile": Key(False, bool, "torch.compile the backbone for training", "run"),
    "device": Key("auto", str, "auto (cuda if available), cpu, cuda, cuda:N", "run"),
    # -- stage 2: beta-VAE ----------------------------------------------------------------
    "latent_dim": Key(
        128, int, "VAE latent size (paper: 128)", "vae", low=1, high=65536, active=_uses_vae
    ),
    "vae_encoder_hidden": Key(
        1560,
        int,
        "encoder hidden units x->h->(mu, logvar) (CADA-VAE's image VAE)",
        "vae",
        low=1,
        high=65536,
        active=_uses_vae,
    ),
    "vae_decoder_hidden": Key(
        1660,
        int,
        "decoder hidden units z->h->x (CADA-VAE)",
        "vae",
        low=1,
        high=65536,
        active=_uses_vae,
    ),
    "vae_epochs": Key(
        100,
        int,
        "stage 2 epochs (paper: 100); the last epoch is kept",
        "vae",
        low=1,
        high=100000,
        active=_uses_vae,
    ),
    "vae_lr": Key(
        1e-3,
        float,
        "stage 2 Adam (amsgrad) learning rate (not in the paper; CADA-VAE uses 1.5e-4 at batch 50)",
        "vae",
        low=0.0,
        high=10.0,
        active=_uses_vae,
    ),
    "vae_batch_size": Key(
        256,
        int,
        "stage 2 batch size (not in the paper)",
        "vae",
        low=1,
        high=1 << 20,
        active=_uses_vae,
    ),
    "vae_recon_loss": Key(
        "l1",
        str,
        "reconstruction loss, summed over the feature dims "
        "and averaged over the batch (CADA-VAE: L1)",
        "vae",
        choices=("l1", "l2"),
        active=_uses_vae,
    ),
    "beta_schedule": Key(
        "linear",
        str,
        "how beta (the KL weight) moves with the epoch",
        "vae",
        choices=BETA_SCHEDULES,
        active=_uses_vae,
    ),
    "beta_max": Key(
        5.04e-4,
        float,
        "beta's plateau (paper: 5.6e-6/epoch for 90 epochs = "
        "5.04e-4); KL summed over latent dims, averaged over the batch",
        "vae",
        low=0.0,
        high=1e6,
        active=_uses_vae,
    ),
    "beta_warmup_epochs": Key(
        90,
        int,
        "linear: epochs to reach beta_max (paper: 90)",
        "vae",
        low=0,
        high=100000,
        active=_schedule("linear"),
    ),
    "beta_cycles": Key(
        4,
        int,
        "cyclical: number of cycles over vae_epochs (Fu et al. 2019)",
        "vae",
        low=1,
        high=10000,
        active=_schedule("cyclical"),
    ),
    "beta_cycle_ratio": Key(
        0.5,
        float,
        "cyclical: fraction of each cycle spent rising",
        "vae",
        low=0.0,
        high=1.0,
        active=_schedule("cyclical"),
    ),
    "beta_midpoint": Key(
        None,
        float,
        "sigmoid: epoch where beta = beta_max/2 (default vae_epochs/2)",
        "vae",
        low=0.0,
        high=1e6,
        nullable=True,
        active=_schedule("sigmoid"),
    ),
    "beta_steepness": Key(
        0.1,
        float,
        "sigmoid: slope per epoch",
        "vae",
        low=1e-9,
        high=1e6,
        active=_schedule("sigmoid"),
    ),
    # -- stage 3: classifier --------------------------------------------------------------
    "classifier_epochs": Key(
        10,
        int,
        "stage 3 epochs (paper: 10)",
        "classifier",
        low=1,
        high=100000,
        active=_uses_classifier,
    ),
    "classifier_lr": Key(
        0.05,
        float,
        "stage 3 SGD learning rate (not in the paper)",
        "classifier",
        low=0.0,
        high=100.0,
        active=_uses_classifier,
    ),
    "classifier_momentum": Key(
        0.9, float, "stage 3 SGD momentum", "classifier", low=0.0, high=1.0, active=_uses_classifier
    ),
    "classifier_weight_decay": Key(
        0.0,
        float,
        "stage 3 SGD weight decay",
        "classifier",
        low=0.0,
        high=1.0,
        active=_uses_classifier,
    ),
    "classifier_batch_size": Key(
        256, int, "stage 3 batch size", "classifier", low=1, high=1 << 20, active=_uses_classifier
    ),
    "z_test": Key(
        "mean",
        str,
        "z for val/test rows: mean (mu, as CADA-VAE) or sample",
        "classifier",
        choices=("mean", "sample"),
        active=lambda c: c["method"] == "vae",
    ),
    "noise_std": Key(
        0.1,
        float,
        "noise: std of the Gaussian added to x (x is min-max scaled to [0, 1])",
        "classifier",
        low=0.0,
        high=1e6,
        active=lambda c: c["method"] == "noise",
    ),
    "tau": Key(
        1.0,
        float,
        "logit_adjust: subtract tau*log(prior) at test",
        "classifier",
        low=0.0,
        high=1e6,
        active=lambda c: c["method"] == "logit_adjust",
    ),
    "cb_beta": Key(
        0.9999,
        float,
        "cb_loss: class weight (1-b)/(1-b^n_c)",
        "classifier",
        low=0.0,
        high=0.999999999,
        active=lambda c: c["method"] == "cb_loss",
    ),
    "selection_metric": Key(
        "acc",
        str,
        "val metric that picks the best epoch in stages 1 and 3 (paper: acc)",
        "classifier",
        choices=("acc", "acc_h"),
    ),
}
