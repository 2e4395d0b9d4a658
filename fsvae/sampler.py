"""Which training rows one epoch visits: every row once, minority rows repeated.

The paper repeats each minority image or feature row x30 / x50 per epoch (its Table 2): the
`oversample` baseline when fine-tuning the backbone (stage 1), the VAE classifier and its
ablations when training the FC layer (stage 3). Both stages take their epoch's rows from
here. As in torchvision's references/classification (sampler.py) the sampler is its own
small module; it returns an index tensor on the labels' device, which the training loop
shuffles, so that an epoch on the GPU needs no trip to the host.
"""

from __future__ import annotations

import torch


def repeat_minority(labels: torch.Tensor, minority: list[int], factor: int) -> torch.Tensor:
    """Positions into `labels` for one epoch, unshuffled: every row once, then the minority
    rows again until each has appeared `factor` times in all (1: every row once)."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 1:
        raise ValueError(f"sampling factor {factor!r}: expected an integer >= 1")
    rows = torch.arange(len(labels), device=labels.device)
    is_min = torch.isin(labels, torch.tensor(minority, dtype=labels.dtype, device=labels.device))
    return torch.cat([rows] + [rows[is_min]] * (factor - 1))
