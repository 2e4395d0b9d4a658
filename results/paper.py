"""The paper's published numbers (Park 2021, Table 2), set beside ours."""
from __future__ import annotations

from importlib import resources
from io import StringIO

import pandas as pd

from results.errors import ResultsError
from results.table import METRICS

PAPER_SOURCE = "Park (2021), Journal of KIIT 19(2), Table 2"


def load_paper() -> pd.DataFrame:
    """Park (2021) Table 2 as shipped in results/data/paper_table2.csv (percent)."""
    text = resources.files("results").joinpath("data/paper_table2.csv").read_text("utf-8")
    paper = pd.read_csv(StringIO(text), comment="#", dtype={"sampling_factor": str})
    paper["sampling_factor"] = paper["sampling_factor"].fillna("").astype(str)
    return paper


def merge_paper(cells: pd.DataFrame, metric_set: str, value: str, acc_h: str = "acc_h"
                ) -> pd.DataFrame:
    """`cells` with `paper` (the published number of the same method, sampling factor, n_f
    and metric; NaN where the paper has none) and `diff` = cells[value] - paper, in points.
    The paper's acc_h is set beside our metric named `acc_h` (acc_h or acc_h_samples)."""
    if metric_set != "test":
        raise ResultsError("--with-paper compares with the paper's test accuracies; use "
                           "--metric-set test")
    paper = load_paper().melt(id_vars=["method", "sampling_factor", "n_f"],
                              value_vars=list(METRICS), var_name="metric", value_name="paper")
    paper["metric"] = paper["metric"].replace({"acc_h": acc_h})
    out = cells.merge(paper, on=["method", "sampling_factor", "n_f", "metric"], how="left")
    out["diff"] = out[value] - out["paper"]
    return out


def acc_h_note(acc_h: str) -> str:
    """Which of our acc_h the paper's is set beside, and why the other one exists."""
    wording = ("The paper defines acc_h from the \"accuracy of the data belonging to "
               "majority/minority classes\", which reads as sample-weighted")
    if acc_h == "acc_h_samples":
        return (f"Beside the paper's acc_h: our acc_h_samples (accuracy over the images of "
                f"each group). {wording}; CADA-VAE's per-class mean is the default acc_h.")
    return (f"Beside the paper's acc_h: our acc_h, the mean of per-class accuracies within "
            f"each group (CADA-VAE, Schonfeld et al. 2019). {wording}: --acc-h samples sets "
            f"acc_h_samples beside it instead.")


def missing_rows(cells: pd.DataFrame) -> list[str]:
    """The paper's rows (method and sampling factor) that `cells` has no runs of."""
    ours = set(zip(cells["method"], cells["sampling_factor"]))
    rows = load_paper()[["method", "sampling_factor"]].drop_duplicates()
    return [f"{m} x{sf}" if sf else m for m, sf in rows.itertuples(index=False)
            if (m, sf) not in ours]
