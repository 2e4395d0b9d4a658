"""Row labels and row order: what a reader sees to tell one configuration from another."""
from __future__ import annotations

import pandas as pd

from fsvae.config import METHODS


def num_key(value: str) -> tuple:
    """Sorts '5' < '10' < 'abc': numbers by value, then text."""
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(value))


def method_key(method: str) -> tuple:
    """The paper's row order (plain, oversample, vae), then our ablations, then the rest."""
    return (METHODS.index(method), "") if method in METHODS else (len(METHODS), method)


def stratum_key(stratum: str) -> list:
    """Orders strata such as 'n_f=5' < 'n_f=10' by their values."""
    return [(k, num_key(v)) for k, _, v in (p.partition("=") for p in stratum.split(",") if p)]


def row_labels(runs: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Row labels and the keys that distinguish them: 'plain', 'oversample x30',
    'vae x30 [latent_dim=64]'. The keys in brackets are those that differ between the
    configurations of the same method, so a reader sees why two rows are apart and nothing
    is averaged across them."""
    shown_of: dict[tuple, list[str]] = {}
    for method, group in runs.groupby("method", sort=False):
        configs = sorted({(sf, extra) for sf, extra in
                          zip(group["sampling_factor"], group["extra"])})
        dicts = [dict(extra) for _, extra in configs]
        keys = sorted({k for d in dicts for k in d})
        differing = [k for k in keys if len({d.get(k) for d in dicts}) > 1]
        shown = {c: [f"{k}={dict(c[1])[k]}" for k in differing if k in dict(c[1])]
                 for c in configs}
        if len({(sf, tuple(v)) for (sf, _), v in shown.items()}) < len(configs):
            # an absent key told two configurations apart: show absences too
            shown = {c: [f"{k}={dict(c[1]).get(k, 'unset')}" for k in differing]
                     for c in configs}
        for (sf, extra), v in shown.items():
            shown_of[(method, sf, extra)] = v
    labels, params = [], []
    for m, sf, e in zip(runs["method"], runs["sampling_factor"], runs["extra"]):
        v = shown_of[(m, sf, e)]
        labels.append((f"{m} x{sf}" if sf else m) + (f" [{', '.join(v)}]" if v else ""))
        params.append("; ".join(v))
    return labels, params


def row_order(runs: pd.DataFrame) -> list[str]:
    """The labels in the paper's method order, then by sampling factor and other keys."""
    keys = runs.drop_duplicates("row")
    order = sorted(zip(keys["method"], keys["sampling_factor"], keys["extra"], keys["row"]),
                   key=lambda t: (method_key(t[0]), num_key(t[1]) if t[1] else (-1, 0.0, ""),
                                  [(k, num_key(v)) for k, v in t[2]], t[3]))
    return [t[3] for t in order]
