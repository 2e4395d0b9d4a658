"""`fsvae-study table` reads a real SQLite MLflow store, written here the way study/records.py
writes one (a parent run per study, one child run per trial, params = active config keys,
metrics in [0, 1]), and every number it shows is checked against values worked out by hand.
"""
from __future__ import annotations

import argparse
import math
import re
import statistics
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from scipy import stats

from fsvae_study.cli import main as cli_main
from helpers import REPO, cli
from results import tables
from results.tables import ResultsError

T0 = 1_700_000_000_000  # ms; runs start one second apart, in list order

# A grid study: (method, sampling_factor, latent_dim, n_f, seed, test_acc_h, test_acc, status,
# extra params). Bookkeeping keys (data, device, data_workers) vary without splitting rows.
GRID = [
    ("plain", None, None, 5, 0, 0.09, 0.49, "FINISHED", {}),  # older duplicate of the next
    ("plain", None, None, 5, 0, 0.00, 0.50, "FINISHED", {}),
    ("plain", None, None, 5, 1, 0.02, 0.52, "FINISHED", {"device": "cuda", "data_workers": "8"}),
    ("plain", None, None, 5, 2, 0.04, 0.57, "FINISHED", {}),
    ("plain", None, None, 10, 0, 0.10, 0.55, "FINISHED", {}),
    ("oversample", 30, None, 5, 0, 0.20, 0.54, "FINISHED", {}),
    ("oversample", 30, None, 5, 1, 0.30, 0.56, "FINISHED", {}),
    ("oversample", 30, None, 5, 2, None, None, "KILLED", {}),
    ("vae", 30, 32, 5, 0, 0.40, 0.60, "FINISHED", {}),
    ("vae", 30, 32, 5, 1, 0.44, 0.61, "FINISHED", {}),
    ("vae", 30, 32, 5, 2, 0.48, 0.62, "FINISHED", {}),
    ("vae", 30, 32, 5, 3, None, None, "FAILED", {}),
    ("vae", 30, 64, 5, 0, 0.30, 0.58, "FINISHED", {}),
    ("vae", 30, 64, 5, 1, 0.34, 0.60, "FINISHED", {}),
    ("vae", 50, 32, 5, 0, 0.50, 0.63, "FINISHED", {}),
    ("vae", 50, 32, 5, 1, 0.52, 0.64, "FINISHED", {}),
    ("vae", 50, 32, 5, 2, 0.60, 0.65, "FINISHED", {}),
    ("vae", 50, 32, 10, 0, 0.55, 0.66, "FINISHED", {}),
    ("vae", 50, 32, 10, 1, 0.61, 0.70, "FINISHED", {}),
    ("crt", 30, None, 5, 0, 0.35, 0.59, "FINISHED", {}),
    ("crt", 30, None, 5, 1, 0.41, 0.60, "FINISHED", {}),
    ("crt", 30, None, 5, 2, 0.41, 0.60, "FINISHED", {}),
    ("crt", 50, None, 5, 0, 0.45, 0.62, "FINISHED", {}),
    ("crt", 50, None, 5, 1, 0.46, 0.62, "FINISHED", {}),
]

# Typed by hand from GRID, in percent: (row label, n_f, metric) -> the seeds' values.
EXPECTED = {
    ("plain", 5, "acc_h"): [0, 2, 4], ("plain", 5, "acc"): [50, 52, 57],
    ("plain", 10, "acc_h"): [10], ("plain", 10, "acc"): [55],
    ("oversample x30", 5, "acc_h"): [20, 30], ("oversample x30", 5, "acc"): [54, 56],
    ("vae x30 [latent_dim=32]", 5, "acc_h"): [40, 44, 48],
    ("vae x30 [latent_dim=32]", 5, "acc"): [60, 61, 62],
    ("vae x30 [latent_dim=64]", 5, "acc_h"): [30, 34],
    ("vae x30 [latent_dim=64]", 5, "acc"): [58, 60],
    ("vae x50 [latent_dim=32]", 5, "acc_h"): [50, 52, 60],
    ("vae x50 [latent_dim=32]", 5, "acc"): [63, 64, 65],
    ("vae x50 [latent_dim=32]", 10, "acc_h"): [55, 61],
    ("vae x50 [latent_dim=32]", 10, "acc"): [66, 70],
    ("crt x30", 5, "acc_h"): [35, 41, 41], ("crt x30", 5, "acc"): [59, 60, 60],
    ("crt x50", 5, "acc_h"): [45, 46], ("crt x50", 5, "acc"): [62, 62],
}
ROW_ORDER = ["plain", "oversample x30", "vae x30 [latent_dim=32]", "vae x30 [latent_dim=64]",
             "vae x50 [latent_dim=32]", "crt x30", "crt x50"]

# An Optuna search, strata n_f: (n_f, sampling_factor, latent_dim, val_acc_h, test_acc_h,
# test_acc, status). At n_f=5 the best TEST acc_h (0.70) is not the best by validation.
SEARCH = [
    (5, 10, 16, 0.50, 0.70, 0.60, "FINISHED"),
    (5, 30, 32, 0.60, 0.45, 0.61, "FINISHED"),
    (5, 30, 8, 0.55, 0.50, 0.62, "FINISHED"),
    (5, 30, 8, None, None, None, "FAILED"),
    (10, 30, 64, 0.52, 0.48, 0.62, "FINISHED"),
    (10, 50, 16, 0.65, 0.58, 0.66, "FINISHED"),
]


def _study(client: MlflowClient, root: Path, name: str, kind: str, strata: str) -> tuple:
    """An experiment and its parent run, tagged as study/run.py tags them."""
    exp = client.create_experiment(name, artifact_location=(root / "art" / name).as_uri())
    parent = client.create_run(exp, start_time=T0 - 10_000, run_name=f"study:{name}", tags={
        "fsvae.role": "study", "fsvae.space_kind": kind, "fsvae.objective": "val_acc_h",
        "fsvae.mode": "max", "fsvae.strata": strata}).info.run_id
    return exp, parent


def _trial(client: MlflowClient, exp: str, parent: str, i: int, params: dict,
           metrics: dict, status: str, stratum: str = "") -> str:
    """One child run: params are strings, metrics fractions, status as the recorder ends it."""
    run = client.create_run(exp, start_time=T0 + 1000 * i, run_name=f"trial-{i}", tags={
        "mlflow.parentRunId": parent, "fsvae.role": "trial", "fsvae.trial_id": f"t{i:03d}",
        "fsvae.stratum": stratum})
    rid = run.info.run_id
    client.log_batch(rid, params=[Param(k, str(v)) for k, v in sorted(params.items())],
                     metrics=[Metric(k, float(v), T0, 0) for k, v in metrics.items()
                              if v is not None])
    client.set_terminated(rid, status)
    return rid


def grid_params(method: str, sf: int | None, latent: int | None, n_f: int, seed: int) -> dict:
    """The active config keys such a trial logs (sampling_factor only where it is used)."""
    p = {"method": method, "n_f": n_f, "seed": seed, "backbone": "resnet18",
         "image_size": 32, "num_minority": 5, "data": "/data/fs14", "device": "cpu",
         "data_workers": 0}
    if sf is not None:
        p["sampling_factor"] = sf
    if method != "plain" and method != "oversample":
        p["classifier_lr"] = 0.05
    if latent is not None:
        p["latent_dim"] = latent
    return p


# Learning curves of one run (GRID[18], the best by val_acc_h): stage -> key -> per-epoch
# values, and the best epochs; the figures tests rebuild the progress rows from them.
CURVES = {
    "backbone": {"train_loss": [2.0, 1.5, 1.0], "train_acc": [0.3, 0.5, 0.7],
                 "val_acc": [0.2, 0.3, 0.35], "val_acc_h": [0.0, 0.1, 0.2],
                 "lr": [0.01, 0.005, 0.0]},
    "vae": {"recon": [100.0, 80.0], "kl": [1.0, 2.0], "beta": [0.0, 5e-4],
            "loss": [100.0, 80.001], "val_recon": [110.0, 90.0], "val_kl": [1.5, 2.5]},
    "classifier": {"train_loss": [1.2, 0.8, 0.6], "train_acc": [0.5, 0.6, 0.8],
                   "val_acc": [0.4, 0.5, 0.45], "val_acc_h": [0.3, 0.4, 0.35]},
}
BEST_EPOCHS = {"backbone": 2, "classifier": 1}
CURVE_RUN = 18


def make_store(root: Path) -> dict:
    """The three experiments: grid (GRID), search (SEARCH, optuna) and broken (only a
    failed run). Returns the tracking URI and the run ids in GRID and SEARCH order."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp, parent = _study(client, root, "grid", "grid", "")
    ids = []
    for i, (method, sf, latent, n_f, seed, acc_h, acc, status, extra) in enumerate(GRID):
        params = {**grid_params(method, sf, latent, n_f, seed), **extra}
        metrics = {"test_acc_h": acc_h, "test_acc": acc,
                   "val_acc_h": None if acc_h is None else acc_h + 0.01,
                   "val_acc": None if acc is None else acc + 0.01}
        ids.append(_trial(client, exp, parent, i, params, metrics, status))
    client.log_batch(ids[CURVE_RUN], metrics=[
        Metric(f"{stage}_{key}", v, T0 + epoch, epoch)
        for stage, keys in CURVES.items() for key, values in keys.items()
        for epoch, v in enumerate(values)] + [
        Metric(f"{stage}_best_epoch", float(e), T0, 0) for stage, e in BEST_EPOCHS.items()])
    exp, parent = _study(client, root, "search", "optuna", "n_f")
    client.log_dict(parent, {"params": {"latent_dim": {}, "sampling_factor": {}}},
                    "space.json")
    search_ids = []
    for i, (n_f, sf, latent, val, acc_h, acc, status) in enumerate(SEARCH):
        params = grid_params("vae", sf, latent, n_f, 0)
        metrics = {"val_acc_h": val, "test_acc_h": acc_h, "test_acc": acc}
        search_ids.append(_trial(client, exp, parent, i, params, metrics, status,
                                 stratum=f"n_f={n_f}"))
    exp, parent = _study(client, root, "broken", "grid", "")
    _trial(client, exp, parent, 0, grid_params("plain", None, None, 5, 0), {}, "FAILED")
    return {"uri": uri, "ids": ids, "search_ids": search_ids}


_SHARED: dict = {}


def shared_store(tmp_path_factory) -> dict:
    """make_store once per session: creating an MLflow database costs seconds, and the
    figures tests read the same runs (nothing here writes to the store after it is built)."""
    if not _SHARED:
        _SHARED.update(make_store(tmp_path_factory.mktemp("mlflow")))
    return _SHARED


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    return shared_store(tmp_path_factory)


def table(store: dict, experiment: str = "grid", **kw) -> tables.Table:
    return tables.build_table(tables.load_study(experiment, store["uri"]), **kw)


def tidy(t: tables.Table) -> pd.DataFrame:
    """The CSV as a reader gets it back."""
    return pd.read_csv(StringIO(tables.to_csv(t)), dtype={"sampling_factor": str, "seeds": str,
                                                          "params": str}, keep_default_na=True)


def hand_stats(values: list[float]) -> dict:
    """mean, sample std, n, 95% Student-t interval, computed independently of the code."""
    n = len(values)
    mean = statistics.mean(values)
    if n < 2:
        return {"mean": mean, "std": math.nan, "n": n, "lo": math.nan, "hi": math.nan}
    sd = statistics.stdev(values)
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    return {"mean": mean, "std": sd, "n": n, "lo": mean - half, "hi": mean + half}


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9)


# -- cells -------------------------------------------------------------------------------


def test_every_cell_is_mean_std_n_and_t_interval_of_its_seeds(store):
    cells = tidy(table(store))
    cells = cells[cells["section"] == "table"]
    got = {(r.row, r.n_f, r.metric): r for r in cells.itertuples()}
    assert set(got) == set(EXPECTED)
    for key, values in EXPECTED.items():
        want, r = hand_stats(values), got[key]
        assert same(r.mean, want["mean"]) and same(r.std, want["std"]), key
        assert r.n == want["n"], key
        assert same(r.ci95_low, want["lo"]) and same(r.ci95_high, want["hi"]), key


def test_a_three_seed_cell_worked_through(store):
    # acc_h 40, 44, 48: mean 44, std 4, t(0.975, 2) = 4.3027 -> 44 -/+ 9.9368
    r = tidy(table(store)).set_index(["row", "n_f", "metric"]).loc[
        ("vae x30 [latent_dim=32]", 5, "acc_h")]
    assert (r["mean"], r["std"], r["n"]) == (pytest.approx(44.0), pytest.approx(4.0), 3)
    assert r["ci95_low"] == pytest.approx(44 - 4.302653 * 4 / math.sqrt(3), abs=1e-5)
    assert r["ci95_high"] == pytest.approx(54.0 - 0.063, abs=1e-3)


def test_configs_differing_in_one_key_are_separate_rows_never_averaged(store):
    t = table(store)
    assert t.rows == ROW_ORDER  # the paper's order: plain, oversample, vae, then ablations
    vae30 = t.cells[(t.cells["method"] == "vae") & (t.cells["sampling_factor"] == "30")]
    assert sorted(set(vae30["params"])) == ["latent_dim=32", "latent_dim=64"]
    # the 5 finished vae x30 runs at n_f=5 stay split 3 + 2
    assert sorted(vae30[vae30["metric"] == "acc"]["n"]) == [2, 3]


def test_plain_has_no_sampling_factor_and_bookkeeping_keys_do_not_split_rows(store):
    cells = tidy(table(store))
    plain = cells[(cells["row"] == "plain") & (cells["n_f"] == 5)]
    assert plain["sampling_factor"].isna().all()  # empty in the CSV, not invented
    assert (plain["n"] == 3).all()  # seed 1 ran on cuda with 8 workers and still pools


def test_failed_and_stopped_runs_are_counted_in_a_note_not_averaged(store):
    t = table(store)
    assert "Not shown: 1 failed run (status FAILED), 1 stopped run (status KILLED)." in t.notes
    over = t.cells[(t.cells["row"] == "oversample x30") & (t.cells["metric"] == "acc")]
    assert over["n"].tolist() == [2]


def test_a_duplicate_config_and_seed_keeps_the_latest_run_and_names_the_other(store):
    t = table(store)
    older, newer = store["ids"][0], store["ids"][1]
    note = next(n for n in t.notes if "duplicate" in n)
    assert "1 duplicate run" in note and older in note
    cell = t.cells.set_index(["row", "n_f", "metric"]).loc[("plain", 5, "acc_h")]
    assert newer in cell["run_ids"].split(";") and older not in cell["run_ids"]
    assert cell["mean"] == pytest.approx(2.0)  # 9 (the older run) is not in it


def test_csv_carries_the_run_ids_behind_each_cell(store):
    cells = tidy(table(store))
    ids = store["ids"]
    r = cells.set_index(["row", "n_f", "metric"]).loc[("vae x50 [latent_dim=32]", 10, "acc")]
    assert set(r["run_ids"].split(";")) == {ids[17], ids[18]}
    assert r["seeds"].split(";") == ["0", "1"]
    # every finished, non-duplicate run is behind exactly one cell per metric
    used = [x for s in cells[cells["metric"] == "acc"]["run_ids"] for x in s.split(";")]
    expected = {ids[i] for i, g in enumerate(GRID) if g[7] == "FINISHED"} - {ids[0]}
    assert sorted(used) == sorted(expected)


def test_val_metric_set_reads_the_val_metrics(store):
    cells = tidy(table(store, metric_set="val")).set_index(["row", "n_f", "metric"])
    assert cells.loc[("plain", 10, "acc_h"), "mean"] == pytest.approx(11.0)


# -- formats -----------------------------------------------------------------------------


def _md_cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_markdown_has_one_line_per_row_and_consistent_columns(store):
    t = table(store)
    lines = [ln for ln in tables.to_markdown(t).splitlines() if ln.startswith("|")]
    widths = {len(_md_cells(ln)) for ln in lines}
    assert widths == {1 + 2 * 2}  # method + (acc_h, acc) for n_f 5 and 10
    body = lines[2:]
    assert [_md_cells(ln)[0] for ln in body] == ROW_ORDER
    vae50 = _md_cells(body[4])
    assert vae50[1] == "**54.00 ± 5.29 (n=3)**"  # column best: 50, 52, 60
    assert _md_cells(body[0])[3] == "10.00 (n=1)"  # one seed: no spread, n=1 marked
    assert "Not shown: 1 failed run" in tables.to_markdown(t)


def test_latex_is_booktabs_balanced_with_one_line_per_row_and_bold_column_best(store):
    t = table(store)
    tex = tables.to_latex(t)
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 1
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    depth = 0
    for ch in tex.replace(r"\{", "").replace(r"\}", ""):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    body = tex[tex.index(r"\midrule"):tex.index(r"\bottomrule")].splitlines()[1:]
    assert len(body) == len(ROW_ORDER) and all(ln.endswith(r"\\") for ln in body)
    assert body[2].startswith(r"vae x30 [latent\_dim=32] & ")
    assert "latent_dim" not in tex.replace(r"latent\_dim", "")  # every underscore escaped
    grid = [ln[:-2].split(" & ") for ln in body]
    for col in range(1, 5):  # n_f=5 acc_h, n_f=5 acc, n_f=10 acc_h, n_f=10 acc
        bold = [row[0] for row in grid if row[col].startswith(r"\textbf{")]
        assert bold == ["vae x50 [latent\\_dim=32]"], col
    assert r"\textbf{54.00 $\pm$ 5.29 (n=3)}" in tex
    assert "1 failed run" in tex


def test_with_paper_adds_the_published_numbers_and_our_difference(store):
    t = table(store, with_paper=True)
    paper = pd.read_csv(REPO / "results" / "data" / "paper_table2.csv", comment="#",
                        dtype={"sampling_factor": str}).fillna({"sampling_factor": ""})
    published = {(r.method, r.sampling_factor, r.n_f, m): getattr(r, m)
                 for r in paper.itertuples() for m in ("acc_h", "acc")}
    assert published[("plain", "", 5, "acc")] == 53.75  # the packaged copy of Table 2
    cells = tidy(t)
    cells = cells[cells["section"] == "table"].fillna({"sampling_factor": ""})
    for r in cells.itertuples():
        key = (r.method, r.sampling_factor.removesuffix(".0"), r.n_f, r.metric)
        if key in published:
            assert r.paper == pytest.approx(published[key])
            assert r.diff == pytest.approx(statistics.mean(EXPECTED[(r.row, r.n_f, r.metric)])
                                           - published[key])
        else:
            assert math.isnan(r.paper) and math.isnan(r.diff)
    by = cells.set_index(["row", "n_f", "metric"])
    assert by.loc[("plain", 5, "acc"), "diff"] == pytest.approx(53.0 - 53.75)
    assert by.loc[("vae x30 [latent_dim=64]", 5, "acc_h"), "paper"] == pytest.approx(3.64)
    md = tables.to_markdown(t)
    assert "| plain | 2.00 ± 2.00 (n=3) | 0.00 | +2.00 | 53.00 ± 3.61 (n=3) | 53.75 | -0.75 |" \
        in md
    assert "Paper rows with no runs here: oversample x50." in md


def test_with_paper_refuses_validation_metrics(store):
    with pytest.raises(ResultsError, match="paper's test"):
        table(store, metric_set="val", with_paper=True)


# -- paired comparisons ------------------------------------------------------------------


def _comparisons(t: tables.Table) -> dict:
    return {(r.row, r.n_f, r.metric): r for r in t.comparisons.itertuples()}


def test_compare_pairs_seeds_with_matching_sampling_factor(store):
    t = table(store, compare="vae:crt")
    got = _comparisons(t)
    # vae - crt per seed, by hand from GRID (points)
    want = {
        ("vae x30 [latent_dim=32] minus crt x30", 5, "acc_h"): [5, 3, 7],
        ("vae x30 [latent_dim=32] minus crt x30", 5, "acc"): [1, 1, 2],
        ("vae x30 [latent_dim=64] minus crt x30", 5, "acc_h"): [-5, -7],
        ("vae x30 [latent_dim=64] minus crt x30", 5, "acc"): [-1, 0],
        ("vae x50 [latent_dim=32] minus crt x50", 5, "acc_h"): [5, 6],
        ("vae x50 [latent_dim=32] minus crt x50", 5, "acc"): [1, 2],
    }
    assert set(got) == set(want)
    for key, diffs in want.items():
        h, r = hand_stats(diffs), got[key]
        assert same(r.mean, h["mean"]) and same(r.std, h["std"]) and r.n == h["n"], key
        assert same(r.ci95_low, h["lo"]) and same(r.ci95_high, h["hi"]), key
    assert got[("vae x30 [latent_dim=32] minus crt x30", 5, "acc_h")].run_ids.split(";")[0] \
        == f"{store['ids'][8]}:{store['ids'][19]}"
    line = next(s for s in t.summaries if s.startswith("vae x30 [latent_dim=32] minus crt x30"))
    lo, hi = 5 - 4.302653 * 2 / math.sqrt(3), 5 + 4.302653 * 2 / math.sqrt(3)
    assert line.startswith(f"vae x30 [latent_dim=32] minus crt x30 at n_f=5: +5.00 acc_h "
                           f"points, 95% CI [{lo:.2f}, {hi:.2f}]; +1.33 acc points")
    assert line.endswith("3 seeds.")


def test_compare_pinned_factors(store):
    one = _comparisons(table(store, compare="vae@50:crt"))  # pins crt to x50 as well
    assert {k[0] for k in one} == {"vae x50 [latent_dim=32] minus crt x50"}
    both = _comparisons(table(store, compare="vae@50:crt@30"))  # exactly these two
    r = both[("vae x50 [latent_dim=32] minus crt x30", 5, "acc_h")]
    assert (r.mean, r.std, r.n) == (pytest.approx(15.0), pytest.approx(4.0), 3)  # 15, 11, 19


def test_compare_against_a_method_without_sampling_factor_uses_each_factor(store):
    t = table(store, compare="vae:plain")
    rows = {k[0] for k in _comparisons(t)}
    assert rows == {f"{r} minus plain" for r in ROW_ORDER if r.startswith("vae")}
    r = _comparisons(t)[("vae x50 [latent_dim=32] minus plain", 10, "acc_h")]
    assert r.n == 1 and r.mean == pytest.approx(45.0) and math.isnan(r.ci95_low)
    line = next(s for s in t.summaries if "minus plain at n_f=10" in s)
    assert "+45.00 acc_h points" in line and "CI" not in line.split(";")[0]
    assert "confidence interval is undefined" in line


def test_compare_appears_in_every_format(store):
    t = table(store, compare="vae:crt")
    md, tex, csv = tables.to_markdown(t), tables.to_latex(t), tidy(t)
    assert "| vae x50 [latent_dim=32] minus crt x50 | 5 | +5.50 |" in md
    assert r"vae x50 [latent\_dim=32] minus crt x50 & 5 & +5.50 &" in tex
    assert tex.count(r"\begin{tabular}") == tex.count(r"\end{tabular}") == 2
    comp = csv[csv["section"] == "comparison"]
    assert len(comp) == 6 and set(comp["a"]) == {"vae x30 [latent_dim=32]",
                                                  "vae x30 [latent_dim=64]",
                                                  "vae x50 [latent_dim=32]"}
    assert md.rstrip().endswith("2 seeds.")  # the plain-language lines follow the table


@pytest.mark.parametrize("text, message", [
    ("vae-crt", "expected A:B where A and B are METHOD or METHOD@SAMPLING_FACTOR"),
    ("vae:crt:plain", "expected A:B"),
    ("vae:vae", "with itself"),
    ("noise:crt", "no finished runs of method 'noise'; methods with finished runs: plain, "
                  "oversample, vae, crt"),
    ("vae@70:crt", "no finished runs of vae@70; vae has sampling factors: 30, 50"),
])
def test_compare_errors_name_the_problem(store, text, message):
    with pytest.raises(ResultsError, match=re.escape(message)):
        table(store, compare=text)


# -- optuna studies ----------------------------------------------------------------------


def test_optuna_rows_are_the_best_by_validation_with_test_metrics(store):
    t = table(store, experiment="search", with_paper=True)
    cells = tidy(t).set_index(["stratum", "metric"])
    ids = store["search_ids"]
    five, ten = cells.loc[("n_f=5", "acc_h")], cells.loc[("n_f=10", "acc_h")]
    assert five["run_ids"] == ids[1]  # val 0.60 wins; the test-best (0.70) is not chosen
    assert five["value"] == pytest.approx(45.0)
    assert cells.loc[("n_f=5", "acc"), "value"] == pytest.approx(61.0)
    assert five["objective_value"] == pytest.approx(0.60)
    assert five["params"] == "latent_dim=32; sampling_factor=30"  # space.json's keys
    assert (five["n_trials"], five["n_finished"], five["n_failed"]) == (4, 3, 1)
    assert ten["run_ids"] == ids[5] and ten["value"] == pytest.approx(58.0)
    assert ten["paper"] == pytest.approx(37.24)  # vae x50 at n_f=10
    assert ten["diff"] == pytest.approx(58.0 - 37.24)
    md = [ln for ln in tables.to_markdown(t).splitlines() if ln.startswith("|")]
    assert len(md) == 4 and len({len(_md_cells(ln)) for ln in md}) == 1
    assert "3/1/0 of 4" in md[2]


def test_optuna_studies_refuse_compare(store):
    with pytest.raises(ResultsError, match="Optuna search"):
        table(store, experiment="search", compare="vae:crt")


# -- errors and the command line ---------------------------------------------------------


def test_unknown_experiment_names_it_and_lists_the_existing_ones(store):
    with pytest.raises(ResultsError) as e:
        tables.load_study("nope", store["uri"])
    assert "'nope'" in str(e.value) and "broken, grid, search" in str(e.value)


def test_experiment_without_finished_runs_says_so(store):
    with pytest.raises(ResultsError, match=r"'broken' has no finished trial runs, nothing to "
                                           r"show \(trial runs: 1 FAILED\)"):
        table(store, experiment="broken")


def test_missing_store_is_an_error_not_a_new_empty_database(tmp_path):
    with pytest.raises(ResultsError, match="no MLflow store"):
        tables.load_study("grid", f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists()


def test_cli_errors_exit_2_with_one_line(store, capsys):
    rc = cli_main(["table", "--experiment", "grid", "--tracking-uri", store["uri"],
                   "--compare", "vae"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "expected A:B" in err[0]


def test_cli_writes_csv_to_out_and_prints_the_summaries(store, tmp_path, capsys):
    out = tmp_path / "t.csv"
    args = argparse.Namespace(experiment="grid", tracking_uri=store["uri"], storage=None,
                              format="csv", out=str(out), metric_set="test",
                              with_paper=False, compare="vae@50:crt")
    assert tables.table_from_args(args) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert "vae x50 [latent_dim=32] minus crt x50 at n_f=5: +5.50 acc_h points" in printed
    assert len(pd.read_csv(out)) == len(EXPECTED) + 2


def test_cli_unknown_experiment_exits_2_naming_it(store, capsys):
    rc = cli_main(["table", "--experiment", "nope", "--tracking-uri", store["uri"]])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err.startswith("fsvae-study table: error: no experiment named 'nope'")
    assert "grid" in captured.err


def test_real_cli_subprocess_prints_the_table_and_exits_0(store):
    ok = cli("table", "--experiment", "grid", "--tracking-uri", store["uri"], "--format",
             "markdown", timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "| vae x30 [latent_dim=64] | 32.00 ± 2.83 (n=2) |" in ok.stdout
    assert "Not shown: 1 failed run (status FAILED), 1 stopped run" in ok.stdout
