"""A table as markdown and LaTeX, from the same store as the table tests.
"""
from __future__ import annotations

import pytest

from results_store import ROW_ORDER, md_cells, shared_store, table


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    return shared_store(tmp_path_factory)


def test_markdown_has_one_line_per_row_and_consistent_columns(store):
    t = table(store)
    lines = [ln for ln in t.to_markdown().splitlines() if ln.startswith("|")]
    widths = {len(md_cells(ln)) for ln in lines}
    assert widths == {1 + 2 * 2}  # method + (acc_h, acc) for n_f 5 and 10
    body = lines[2:]
    assert [md_cells(ln)[0] for ln in body] == ROW_ORDER
    vae50 = md_cells(body[4])
    assert vae50[1] == "**54.00 ± 5.29 (n=3)**"  # column best: 50, 52, 60
    assert md_cells(body[0])[3] == "10.00 (n=1)"  # one seed: no spread, n=1 marked
    assert "Not shown: 1 failed run" in t.to_markdown()


def test_latex_is_booktabs_balanced_with_one_line_per_row_and_bold_column_best(store):
    t = table(store)
    tex = t.to_latex()
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
