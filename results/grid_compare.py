"""A grid table's `--compare A:B`: the paired per-seed differences of method A minus method
B, row pair by row pair and n_f by n_f, with a plain-language line for each."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from results.errors import ResultsError
from results.table import method_key, num_key, summarize

COMPARE_FORM = (
    "A:B where A and B are METHOD or METHOD@SAMPLING_FACTOR, e.g. vae:crt or vae@50:oversample@50"
)


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

    Pairing rules (compare_runs): a row of A pairs with a row of B when their runs agree on
    every key both methods use (the keys present as params on their runs) apart from
    `method`; within a pair, runs pair by n_f and seed. A key only one method uses (say
    latent_dim for vae against crt) is not matched. So the sampling factor is matched when
    both methods use one and neither side pins it; a pinned factor on one side pins the
    other side to the same factor (if it uses one); pinning both (vae@50:crt@30) compares
    exactly those. A method without a sampling factor (plain) is compared with each factor
    of the other side. Rows that find no partner are listed as unmatched.
    """
    m = _COMPARE.match(text or "")
    if not m:
        raise ResultsError(f"--compare {text!r}: expected {COMPARE_FORM}")
    a, b = Side(m.group(1), m.group(2)), Side(m.group(3), m.group(4))
    if a == b:
        raise ResultsError(f"--compare {text!r} compares {a} with itself; expected {COMPARE_FORM}")
    return a, b


def _side_runs(runs: pd.DataFrame, side: Side, text: str) -> pd.DataFrame:
    """The runs of one side; ResultsError naming what exists when there are none."""
    mine = runs[runs["method"] == side.method]
    if mine.empty:
        have = sorted(set(runs["method"]), key=method_key)
        raise ResultsError(
            f"--compare {text}: no finished runs of method {side.method!r}; "
            f"methods with finished runs: {', '.join(have)}"
        )
    if side.sampling_factor is not None:
        pinned = mine[mine["sampling_factor"] == side.sampling_factor]
        if pinned.empty:
            have = sorted({sf for sf in mine["sampling_factor"] if sf}, key=num_key)
            raise ResultsError(
                f"--compare {text}: no finished runs of {side}; "
                f"{side.method} has sampling factors: "
                f"{', '.join(have) if have else 'none (it does not use one)'}"
            )
        mine = pinned
    return mine


def _sides(runs: pd.DataFrame, a: Side, b: Side, text: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both sides' runs; a factor pinned on one side only pins the other to it too."""
    ra, rb = _side_runs(runs, a, text), _side_runs(runs, b, text)
    pin = a.sampling_factor or b.sampling_factor
    if (
        _uses_factor(ra)
        and _uses_factor(rb)
        and pin
        and not (a.sampling_factor and b.sampling_factor)
    ):
        ra, rb = (
            _side_runs(runs, Side(a.method, pin), text),
            _side_runs(runs, Side(b.method, pin), text),
        )
    return ra, rb


def _uses_factor(runs: pd.DataFrame) -> bool:
    return bool((runs["sampling_factor"] != "").any())


def _keys_used(runs: pd.DataFrame) -> set[str]:
    """The config keys present as params on these runs, besides method, n_f and seed (runs
    log exactly their active config keys, so these are the keys the method uses)."""
    keys = {k for extra in runs["extra"] for k, _ in extra}
    return keys | ({"sampling_factor"} if _uses_factor(runs) else set())


def _row_configs(runs: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Each row's configuration (one per row: rows differ in nothing but n_f and seed)."""
    out = {}
    for row, group in runs.groupby("row", sort=False):
        first = group.iloc[0]
        sf = {"sampling_factor": first["sampling_factor"]} if first["sampling_factor"] else {}
        out[row] = {**dict(first["extra"]), **sf}
    return out


def _differing(ca: dict, cb: dict, keys: list[str]) -> list[str]:
    return [k for k in keys if ca.get(k) != cb.get(k)]


def _pair_rows(
    ra: pd.DataFrame, rb: pd.DataFrame, keys: list[str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """(row of A, row of B) for every two rows that agree on `keys`; plus one line per row
    of either side that finds no partner, naming its nearest row and the keys that differ."""
    ca, cb = _row_configs(ra), _row_configs(rb)
    pairs = [(la, lb) for la in ca for lb in cb if not _differing(ca[la], cb[lb], keys)]
    unmatched = [_unmatched(la, ca[la], cb, keys) for la in ca if all(p[0] != la for p in pairs)]
    unmatched += [_unmatched(lb, cb[lb], ca, keys) for lb in cb if all(p[1] != lb for p in pairs)]
    return pairs, unmatched


def _unmatched(label: str, config: dict, others: dict[str, dict], keys: list[str]) -> str:
    """'Unmatched, not compared: vae x30 [backbone_lr=0.1] (nearest: crt x30, which differs
    in backbone_lr: 0.1 vs 0.01).'"""
    nearest = min(others, key=lambda o: len(_differing(config, others[o], keys)))
    diffs = ", ".join(
        f"{k}: {config.get(k, 'unset')} vs {others[nearest].get(k, 'unset')}"
        for k in _differing(config, others[nearest], keys)
    )
    return f"Unmatched, not compared: {label} (nearest: {nearest}, which differs in {diffs})."


def compare_runs(
    runs: pd.DataFrame, text: str, metric_set: str, metrics: tuple[str, ...], rows: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    """Per-seed paired differences A - B (points) for every n_f both rows of a pair have,
    with the mean, sample std, n and 95% t interval; plus one plain-language line per n_f
    and one per unmatched row. `runs` are the grid table's runs (results.grid.finished_runs)
    and `rows` its row labels in table order, which the pairs follow."""
    a, b = parse_compare(text)
    ra, rb = _sides(runs, a, b, text)
    keys = sorted(_keys_used(ra) & _keys_used(rb))
    if a.sampling_factor and b.sampling_factor:
        keys = [k for k in keys if k != "sampling_factor"]  # both pinned: compared as given
    pairs, unmatched = _pair_rows(ra, rb, keys)
    if not pairs:
        raise _no_pairs(text, a, b, ra, rb, unmatched)
    order = {r: i for i, r in enumerate(rows)}
    pairs.sort(key=lambda p: (order[p[0]], order[p[1]]))
    records, lines = [], []
    for la, lb in pairs:
        ga, gb = ra[ra["row"] == la], rb[rb["row"] == lb]
        for n_f in sorted(set(ga["n_f"]) & set(gb["n_f"])):
            rec, line = _paired(
                f"{la} minus {lb}",
                la,
                lb,
                ga[ga["n_f"] == n_f],
                gb[gb["n_f"] == n_f],
                int(n_f),
                metric_set,
                metrics,
            )
            records += rec
            lines.append(line)
    if not records:
        raise ResultsError(
            f"--compare {text}: no n_f value has runs of both sides "
            f"({a}: {', '.join(map(str, sorted(set(ra['n_f']))))}; {b}: "
            f"{', '.join(map(str, sorted(set(rb['n_f']))))})"
        )
    return pd.DataFrame(records), lines + unmatched


def _no_pairs(
    text: str, a: Side, b: Side, ra: pd.DataFrame, rb: pd.DataFrame, unmatched: list[str]
) -> ResultsError:
    """Why no row of A found a row of B: disjoint sampling factors (pin both to compare
    them anyway), or another key that differs (named in the unmatched lines)."""
    fa = sorted(set(ra["sampling_factor"]), key=num_key)
    fb = sorted(set(rb["sampling_factor"]), key=num_key)
    if _uses_factor(ra) and _uses_factor(rb) and not set(fa) & set(fb):
        return ResultsError(
            f"--compare {text}: {a.method} and {b.method} share no sampling "
            f"factor ({a.method}: {', '.join(fa)}; {b.method}: "
            f"{', '.join(fb)}); pin both, e.g. {a.method}@{fa[0]}:"
            f"{b.method}@{fb[0]}"
        )
    return ResultsError(
        f"--compare {text}: no configuration of {a} agrees with one of {b} "
        f"on the keys both use. " + " ".join(unmatched)
    )


def _paired(
    label: str,
    la: str,
    lb: str,
    ga: pd.DataFrame,
    gb: pd.DataFrame,
    n_f: int,
    metric_set: str,
    metrics: tuple[str, ...],
) -> tuple[list[dict], str]:
    """The paired cells of one pair of rows at one n_f (one per metric), and its line."""
    merged = ga.merge(gb, on="seed", suffixes=("_a", "_b"))
    merged = merged.sort_values("seed", key=lambda s: s.map(num_key))
    per_metric, records = {}, []
    for m in metrics:
        diffs = (merged[f"{metric_set}_{m}_a"] - merged[f"{metric_set}_{m}_b"]) * 100.0
        per_metric[m] = summarize(diffs.to_numpy())
        records.append(
            {
                "section": "comparison",
                "row": label,
                "a": la,
                "b": lb,
                "n_f": n_f,
                "metric": m,
                **per_metric[m],
                "seeds": ";".join(map(str, merged["seed"])),
                "run_ids": ";".join(
                    f"{x}:{y}" for x, y in zip(merged["run_id_a"], merged["run_id_b"])
                ),
            }
        )
    return records, _summary_line(label, n_f, per_metric, list(merged["seed"]))


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
    tail = (
        f"{n} seeds"
        if n >= 2
        else "1 paired seed, so the confidence interval is undefined (needs at least 2)"
    )
    return head + "; ".join(parts) + f"; {tail}."
