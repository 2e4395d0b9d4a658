"""The paper's published numbers (Park 2021, Tables 1 and 2), set beside ours."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from importlib import resources
from io import StringIO

import pandas as pd

from results.errors import ResultsError
from results.store import SPLITS

PAPER_SOURCE = "Park (2021), Journal of KIIT 19(2), Table 2"
PAPER_METRICS = ("acc_h", "acc")  # Table 2's two columns per n_f


def _read(name: str, **kw) -> pd.DataFrame:
    text = resources.files("results").joinpath(f"data/{name}").read_text("utf-8")
    return pd.read_csv(StringIO(text), comment="#", **kw)


def load_paper() -> pd.DataFrame:
    """Park (2021) Table 2 as shipped in results/data/paper_table2.csv (percent)."""
    paper = _read("paper_table2.csv", dtype={"sampling_factor": str})
    paper["sampling_factor"] = paper["sampling_factor"].fillna("").astype(str)
    return paper


def paper_split() -> tuple[int, int, int]:
    """The paper's (train, val, test) image counts: Table 1, results/data/paper_table1.csv."""
    table1 = _read("paper_table1.csv")
    train, val, test = (int(table1[s].sum()) for s in SPLITS)
    return train, val, test


@dataclass
class SplitSizes:
    """Our split sizes, each with the number of runs that had it, beside the paper's.

    Ours are the dataset's shipped train/val/test lists minus the files that cannot be used
    (docs/trial.md#data); the paper rebuilt its split from the usable files (its Table 1), so
    the two can differ. Both are counted before the GFSL subsampling of minority classes.
    """

    ours: dict[tuple[int, int, int], int]
    unrecorded: int  # runs that recorded no sizes
    paper: tuple[int, int, int]

    @classmethod
    def of(cls, by_run: dict[str, tuple[int, int, int] | None]) -> SplitSizes:
        ours = Counter(v for v in by_run.values() if v is not None)
        return cls(dict(ours.most_common()), sum(v is None for v in by_run.values()), paper_split())

    def note(self) -> str:
        head = (
            "Split sizes, train / val / test images (the dataset's lists minus unusable "
            "files, before the GFSL subsampling): "
        )
        tail = f" Not recorded by {self.unrecorded} run(s)." if self.unrecorded else ""
        if not self.ours:
            return head + f"not recorded by these runs; the paper's Table 1: {_sizes(self.paper)}."
        if list(self.ours) == [self.paper]:
            return head + f"{_sizes(self.paper)}, as in the paper's Table 1." + tail
        return head + f"ours {self._ours()}; the paper's Table 1: {_sizes(self.paper)}." + tail

    def caption(self) -> str:
        """The same, short enough for a table caption."""
        if list(self.ours) == [self.paper]:
            return f"Split (train/val/test): {_sizes(self.paper, '/')}, as in the paper."
        ours = self._ours("/") if self.ours else "not recorded"
        return f"Split (train/val/test): ours {ours}; paper {_sizes(self.paper, '/')}."

    def _ours(self, sep: str = " / ") -> str:
        if len(self.ours) == 1:
            return _sizes(next(iter(self.ours)), sep)
        return ", ".join(
            f"{_sizes(s, sep)} ({n} run{'s' * (n != 1)})" for s, n in self.ours.items()
        )


def _sizes(sizes: tuple[int, ...], sep: str = " / ") -> str:
    return sep.join(f"{n:,}" for n in sizes)


def merge_paper(
    cells: pd.DataFrame, metric_set: str, value: str, acc_h: str = "acc_h"
) -> pd.DataFrame:
    """`cells` with `paper` (the published number of the same method, sampling factor, n_f
    and metric; NaN where the paper has none) and `diff` = cells[value] - paper, in points.
    The paper's acc_h is set beside our metric named `acc_h` (acc_h or acc_h_samples)."""
    if metric_set != "test":
        raise ResultsError(
            "--with-paper compares with the paper's test accuracies; use --metric-set test"
        )
    paper = load_paper().melt(
        id_vars=["method", "sampling_factor", "n_f"],
        value_vars=list(PAPER_METRICS),
        var_name="metric",
        value_name="paper",
    )
    paper["metric"] = paper["metric"].replace({"acc_h": acc_h})
    if cells.empty or "method" not in cells:
        # No shown trial recorded the metric asked for (e.g. acc_h_samples in runs written
        # before it existed): nothing to set the paper beside.
        return cells.assign(paper=float("nan"), diff=float("nan"))
    out = cells.merge(paper, on=["method", "sampling_factor", "n_f", "metric"], how="left")
    out["diff"] = out[value] - out["paper"]
    return out


def acc_h_note(acc_h: str) -> str:
    """Which of our acc_h the paper's is set beside, and why the other one exists."""
    wording = (
        "The paper defines acc_h from the \"accuracy of the data belonging to "
        "majority/minority classes\", which reads as sample-weighted"
    )
    if acc_h == "acc_h_samples":
        return (
            f"Beside the paper's acc_h: our acc_h_samples (accuracy over the images of "
            f"each group). {wording}; CADA-VAE's per-class mean is the default acc_h."
        )
    return (
        f"Beside the paper's acc_h: our acc_h, the mean of per-class accuracies within "
        f"each group (CADA-VAE, Schonfeld et al. 2019). {wording}: --acc-h samples sets "
        f"acc_h_samples beside it instead."
    )


def missing_rows(cells: pd.DataFrame) -> list[str]:
    """The paper's rows (method and sampling factor) that `cells` has no runs of."""
    ours = set(zip(cells["method"], cells["sampling_factor"]))
    rows = load_paper()[["method", "sampling_factor"]].drop_duplicates()
    return [
        f"{m} x{sf}" if sf else m for m, sf in rows.itertuples(index=False) if (m, sf) not in ours
    ]
