"""Paired comparison of two methods in a grid study: per-seed differences A - B, with their
mean and 95% Student-t interval."""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from results.errors import ResultsError
from results.labels import method_key, num_key, row_order
from results.stats import summarize
from results.table import METRICS

COMPARE_FORM = ("A:B where A and B are METHOD or METHOD@SAMPLING_FACTOR, "
                "e.g. vae:crt or vae@50:oversample@50")


@dataclass(frozen=True)
class Side:
    """One side of --compare: a method, optionally pinned to one sampling factor."""

    method: str
    sampling_factor: str | None = None

    def __str__(self) -> str:
        return self.method + (f"@{self.sampling_factor}" if self.sampling_factor else "")


_COMPARE = re.compile(r"^\s*([A-Za-z_]\w*)(?:@(\d+))?\s*:\s*([A-Za-z_]\w*)(?:@(\d+))?\s*$")


def parse_compare(text: str) -> tuple[Side, Side]:
    """'vae:crt' or 'vae@50:oversample@50' -> the two sides.

    Pairing rules (compare_runs): runs pair when n_f and seed agree, and the sampling factor
    too when both methods use one and neither side pins it; a pinned factor on one side
    pins the other side to the same factor (if it uses one); pinning both (vae@50:crt@30)
    compares exactly those. A method without a sampling factor (plain) is compared with
    each factor of the other side.
    """
    m = _COMPARE.match(text or "")
    if not m:
        raise ResultsError(f"--compare {text!r}: expected {COMPARE_FORM}")
    a, b = Side(m.group(1), m.group(2)), Side(m.group(3), m.group(4))
    if a == b:
        raise ResultsError(f"--compare {text!r} compares {a} with itself; expected "
                           f"{COMPARE_FORM}")
    return a, b


def _side_runs(runs: pd.DataFrame, side: Side, text: str) -> pd.DataFrame:
    """The runs of one side; ResultsError naming what exists when there are none."""
    mine = runs[runs["method"] == side.method]
    if mine.empty:
        have = sorted(set(runs["method"]), key=method_key)
        raise ResultsError(f"--compare {text}: no finished runs of method {side.method!r}; "
                           f"methods with finished runs: {', '.join(have)}")
    if side.sampling_factor is not None:
        pinned = mine[mine["sampling_factor"] == side.sampling_factor]
        if pinned.empty:
            have = sorted({sf for sf in mine["sampling_factor"] if sf}, key=num_key)
            raise ResultsError(f"--compare {text}: no finished runs of {side}; "
                               f"{side.method} has sampling factors: "
                               f"{', '.join(have) if have else 'none (it does not use one)'}")
        mine = pinned
    return mine


def compare_runs(runs: pd.DataFrame, text: str, metric_set: str
                 ) -> tuple[pd.DataFrame, list[str]]:
    """Per-seed paired differences A - B (points) for every n_f both sides have, with the
    mean, sample std, n and 95% t interval; plus one plain-language line per n_f."""
    a, b = parse_compare(text)
    ra, rb = _side_runs(runs, a, text), _side_runs(runs, b, text)
    a_uses, b_uses = bool((ra["sampling_factor"] != "").any()), \
        bool((rb["sampling_factor"] != "").any())
    if a_uses and b_uses:
        pin = a.sampling_factor or b.sampling_factor
        if pin and not (a.sampling_factor and b.sampling_factor):
            ra, rb = (_side_runs(runs, Side(a.method, pin), text),
                      _side_runs(runs, Side(b.method, pin), text))
    pairs = []  # (row a, row b)
    for la, ga in ra.groupby("row", sort=False):
        for lb, gb in rb.groupby("row", sort=False):
            sfa, sfb = ga["sampling_factor"].iloc[0], gb["sampling_factor"].iloc[0]
            if a_uses and b_uses and not (a.sampling_factor and b.sampling_factor) \
                    and sfa != sfb:
                continue
            pairs.append((la, lb, ga, gb))
    if not pairs:
        fa = sorted(set(ra["sampling_factor"]), key=num_key)
        fb = sorted(set(rb["sampling_factor"]), key=num_key)
        raise ResultsError(f"--compare {text}: {a.method} and {b.method} share no sampling "
                           f"factor ({a.method}: {', '.join(fa)}; {b.method}: "
                           f"{', '.join(fb)}); pin both, e.g. {a.method}@{fa[0]}:"
                           f"{b.method}@{fb[0]}")
    order = {r: i for i, r in enumerate(row_order(runs))}
    pairs.sort(key=lambda p: (order[p[0]], order[p[1]]))
    records, lines = [], []
    common_nf = False
    for la, lb, ga, gb in pairs:
        label = f"{la} minus {lb}"
        for n_f in sorted(set(ga["n_f"]) & set(gb["n_f"])):
            common_nf = True
            merged = ga[ga["n_f"] == n_f].merge(gb[gb["n_f"] == n_f], on="seed",
                                                suffixes=("_a", "_b"))
            merged = merged.sort_values("seed", key=lambda s: s.map(num_key))
            per_metric = {}
            for m in METRICS:
                diffs = (merged[f"{metric_set}_{m}_a"] - merged[f"{metric_set}_{m}_b"]) * 100.0
                per_metric[m] = summarize(diffs.to_numpy())
                records.append({
                    "section": "comparison", "row": label, "a": la, "b": lb, "n_f": int(n_f),
                    "metric": m, **per_metric[m],
                    "seeds": ";".join(map(str, merged["seed"])),
                    "run_ids": ";".join(f"{x}:{y}" for x, y in
                                        zip(merged["run_id_a"], merged["run_id_b"]))})
            lines.append(_summary_line(label, int(n_f), per_metric, list(merged["seed"])))
    if not common_nf:
        raise ResultsError(f"--compare {text}: no n_f value has runs of both sides "
                           f"({a}: {', '.join(map(str, sorted(set(ra['n_f']))))}; {b}: "
                           f"{', '.join(map(str, sorted(set(rb['n_f']))))})")
    return pd.DataFrame(records), lines


def _summary_line(label: str, n_f: int, per_metric: dict[str, dict], seeds: list) -> str:
    """'vae x50 minus crt x50 at n_f=10: +4.10 acc_h points, 95% CI [1.20, 7.00]; ...'"""
    n = len(seeds)
    head = f"{label} at n_f={n_f}: "
    if n == 0:
        return head + "no seed was run by both, nothing to pair."
    parts = []
    for m, s in per_metric.items():
        part = f"{s['mean']:+.2f} {m} points"
        if n >= 2:
            part += f", 95% CI [{s['ci95_low']:.2f}, {s['ci95_high']:.2f}]"
        parts.append(part)
    tail = f"{n} seeds" if n >= 2 else \
        "1 paired seed, so the confidence interval is undefined (needs at least 2)"
    return head + "; ".join(parts) + f"; {tail}."
