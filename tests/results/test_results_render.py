"""A table as markdown and LaTeX, from the same store as the table tests; the LaTeX is also
compiled with pdflatex where TeX is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from results_store import ROW_ORDER, shared_store, table

from helpers import md_cells
from results.latex import latex_escape


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


def _typeset(tex: str) -> list[str]:
    """The lines LaTeX typesets: comments (the notes) dropped."""
    return [ln for ln in tex.splitlines() if not ln.startswith("%")]


def _blocks(tex: str) -> dict[str, list[list[str]]]:
    """The first tabular's rows, cut into cells, by metric block (the \\multicolumn line
    that opens a block names its metric)."""
    lines = _typeset(tex)
    body = lines[lines.index(r"\midrule") + 1 : lines.index(r"\bottomrule")]
    blocks: dict[str, list[list[str]]] = {}
    for ln in body:
        if ln.startswith(r"\multicolumn"):
            current = blocks.setdefault(ln.split(r"\textit{")[1].split("}")[0], [])
        elif ln != r"\midrule":
            current.append(ln.removesuffix(r" \\").split(" & "))
    return blocks


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
    blocks = _blocks(tex)
    assert list(blocks) == [r"acc\_h", "acc"]  # one block of rows per metric
    escaped = [r.replace("_", r"\_") for r in ROW_ORDER]
    for rows in blocks.values():
        assert [r[0] for r in rows] == escaped and all(len(r) == 1 + 2 for r in rows)
        for col in (1, 2):  # n_f=5, n_f=10
            bold = [r[0] for r in rows if r[col].startswith(r"\textbf{")]
            assert bold == [r"vae x50 [latent\_dim=32]"], col
    assert "latent_dim" not in "\n".join(_typeset(tex)).replace(r"latent\_dim", "")
    assert r"\textbf{54.0 $\pm$ 5.3}" in tex  # column best: 50, 52, 60
    assert "1 failed run" in tex


def test_latex_states_n_once_and_marks_cells_with_another_n(store):
    tex = table(store).to_latex()
    assert "n = 3 per cell (other n marked)" in tex  # 4 cells have 3 seeds, 4 have 2, 1 one
    rows = {r[0]: r for r in _blocks(tex)[r"acc\_h"]}
    assert rows["plain"][1:] == [r"2.0 $\pm$ 2.0", r"10.0$^{n=1}$"]  # 0, 2, 4 and 10
    assert rows[r"vae x30 [latent\_dim=64]"][1] == r"32.0 $\pm$ 2.8$^{n=2}$"  # 30, 34


def test_latex_puts_the_papers_numbers_in_a_second_row_under_each_method(store):
    blocks = _blocks(table(store, with_paper=True).to_latex())
    rows = blocks[r"acc\_h"]
    labels = [r[0] for r in rows]
    paper = r"\quad Park (2021)"
    # under plain, oversample x30, the last vae x30 row and vae x50; none under crt
    assert labels == [
        "plain",
        paper,
        "oversample x30",
        paper,
        r"vae x30 [latent\_dim=32]",
        r"vae x30 [latent\_dim=64]",
        paper,
        r"vae x50 [latent\_dim=32]",
        paper,
        "crt x30",
        "crt x50",
    ]
    # the published numbers at the table's one precision (0.00 and 3.44 in the paper)
    assert rows[1][1:] == ["0.0", "3.4"]  # plain, n_f 5 and 10
    assert rows[6][1:] == ["3.6", "--"]  # vae x30: no run at n_f=10
    assert [r[1:] for r in blocks["acc"] if r[0] == paper][3] == ["54.6", "60.0"]  # vae x50


def test_latex_caption_says_what_a_cell_is_and_the_notes_are_comments(store):
    tex = table(store).to_latex()
    caption = next(ln for ln in tex.splitlines() if ln.startswith(r"\caption{"))
    assert caption == (
        r"\caption{grid (grid study): test metrics, percent. Mean $\pm$ std "
        r"over seeds, n = 3 per cell (other n marked); best per column in "
        r"bold.}"
    )
    comments = tex[: tex.index(r"\begin{table}")].splitlines()
    assert "% Not shown: 1 failed run (status FAILED), 1 stopped run (status KILLED)." in comments


def test_latex_escape_keeps_a_double_hyphen_from_becoming_an_en_dash():
    assert latex_escape("--format csv") == "-{}-format csv"
    assert latex_escape("a–b") == "a--b"  # an en dash character is meant as one
    assert latex_escape("latent_dim 95% ±") == r"latent\_dim 95\% $\pm$"


# -- compiled with pdflatex --------------------------------------------------------------

PDFLATEX = shutil.which("pdflatex")
needs_tex = pytest.mark.skipif(
    PDFLATEX is None,
    reason="pdflatex is not installed (.ci/run installs texlive-latex-base and -recommended)",
)
ARTICLE_TEXTWIDTH = 345.0  # pt: \textwidth of the article class at 10pt, one column
# Measure each tabular where the table shows it, with the shrinking turned off, so a table
# too wide would run past the line (an Overfull \hbox) instead of being scaled down.
MEASURE = (
    r"\let\fsvaeshow\usebox"
    r"\renewcommand{\usebox}[1]{\typeout{TABULAR-WIDTH=\the\wd#1}\fsvaeshow#1}"
)
NO_SHRINK = r"\renewcommand{\resizebox}[3]{#3}"


def compile_table(folder: Path, tex: str, preamble: str = "") -> tuple[str, list[float]]:
    """Inputs the table into an article, runs pdflatex; returns the log and the width (pt)
    of each tabular at the size it was set."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "table.tex").write_text(tex, encoding="utf-8")
    (folder / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{booktabs,graphicx}\n" + preamble + "\n"
        "\\begin{document}\n\\typeout{TEXTWIDTH=\\the\\textwidth}\n\\input{table.tex}\n"
        "\\end{document}\n",
        encoding="utf-8",
    )
    assert PDFLATEX is not None  # its tests are skipped without it (needs_tex)
    done = subprocess.run(
        [PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log = (folder / "doc.log").read_text(encoding="utf-8", errors="replace")
    assert done.returncode == 0, log[-3000:]
    return log, [float(w) for w in re.findall(r"TABULAR-WIDTH=([\d.]+)pt", log)]


def assert_fits_an_article_column(log: str, widths: list[float], tables: int) -> None:
    """Each of the `tables` tabulars compiled at its natural size within an article's text
    width, and TeX reported no line too wide."""
    assert f"TEXTWIDTH={ARTICLE_TEXTWIDTH}pt" in log
    assert len(widths) == tables and all(0 < w <= ARTICLE_TEXTWIDTH for w in widths)
    assert "Overfull \\hbox" not in log


@needs_tex
def test_a_table_of_the_papers_shape_fits_an_article_column_at_its_natural_size(store, tmp_path):
    # 5 method rows, n_f 5, 10, 30, 50, 3 seeds, the paper's numbers: it used to be
    # 1,426 pt too wide with these numbers
    tex = table(store, "table2-shape", with_paper=True).to_latex()
    log, widths = compile_table(tmp_path, tex, MEASURE + NO_SHRINK)
    assert_fits_an_article_column(log, widths, tables=1)


@needs_tex
def test_the_grid_with_long_labels_the_paper_and_comparisons_fits_at_its_natural_size(
    store, tmp_path
):
    tex = table(store, with_paper=True, compare="vae:crt").to_latex()
    log, widths = compile_table(tmp_path, tex, MEASURE + NO_SHRINK)
    assert_fits_an_article_column(log, widths, tables=2)


@needs_tex
def test_the_optuna_table_with_the_paper_fits_at_its_natural_size(store, tmp_path):
    tex = table(store, "search", with_paper=True).to_latex()
    log, widths = compile_table(tmp_path, tex, MEASURE + NO_SHRINK)
    assert_fits_an_article_column(log, widths, tables=1)


@needs_tex
def test_a_table_wider_than_the_line_is_scaled_to_it_not_cut_off(store, tmp_path):
    tex = table(store, "table2-shape", with_paper=True).to_latex()
    narrow = r"\setlength{\textwidth}{200pt}"  # narrower than the tabular
    cut, widths = compile_table(tmp_path / "cut", tex, narrow + MEASURE + NO_SHRINK)
    assert widths[0] > 200 and "Overfull \\hbox" in cut  # what shrinking prevents
    scaled, _ = compile_table(tmp_path / "scaled", tex, narrow)
    assert "Overfull \\hbox" not in scaled
