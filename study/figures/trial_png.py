"""A trial's three PNG figures (learning curves, the val and test confusion matrices), drawn
with Pillow: every trial of a study gets them, so they must be cheap. matplotlib took
~0.8 s of CPU for the three (most of it laying out and rasterising ~600 text objects);
this takes a few tens of ms (bench/README.md has both). The curves show what
study/figures/plots.py's matplotlib `curves` shows (its PANELS), which `fsvae-study figures`
keeps for publication.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache
from pathlib import Path

import matplotlib
from matplotlib import colormaps
from matplotlib.colors import TABLEAU_COLORS
from matplotlib.ticker import MaxNLocator
from PIL import Image, ImageDraw, ImageFont

from study.figures.plots import PANELS

COLORS = list(TABLEAU_COLORS.values())  # matplotlib's C0, C1, ...
INK, GRID, WHITE = (40, 40, 40), (150, 150, 150), (255, 255, 255)
PANEL_W, PANEL_H = 550, 396  # px: matplotlib's 5 x 3.6 in per panel at 110 dpi
MARGIN = {"left": 62, "right": 62, "top": 64, "bottom": 52}


@cache
def font(px: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, the font matplotlib ships and draws with by default."""
    return ImageFont.truetype(
        str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), px
    )


def trial_figures(result: dict, folder: Path) -> list[Path]:
    """curves.png, confusion_val.png, confusion_test.png for one trial's result."""
    m = result["metrics"]
    out = []
    p = curves(
        result["history"],
        folder / "curves.png",
        f"val acc {m['val_acc']:.3f}, val acc_h {m['val_acc_h']:.3f}",
    )
    if p:
        out.append(p)
    for split in ("val", "test"):
        out.append(
            confusion(
                result["confusion"][split],
                result["classes"],
                result["minority_classes"],
                folder / f"confusion_{split}.png",
                f"{split}: acc {m[f'{split}_acc']:.3f}, acc_h {m[f'{split}_acc_h']:.3f}",
            )
        )
    return out


def curves(history: list[dict], path: Path, title: str = "") -> Path | None:
    """One panel per stage present in `history` (fsvae progress rows with an epoch): its
    losses on the left axis, its accuracies (or beta) dashed on the right, its best epoch
    dotted. None when no stage has an epoch."""
    panels = [p for p in PANELS if any(r.get("stage") == p[0] and "epoch" in r for r in history)]
    if not panels:
        return None
    img = Image.new("RGB", (PANEL_W * len(panels), PANEL_H), WHITE)
    draw = ImageDraw.Draw(img)
    if title:
        _text(draw, (img.width / 2, 10), title, 15, "mt")
    for i, (stage, name, left, right) in enumerate(panels):
        rows = [r for r in history if r.get("stage") == stage and "epoch" in r]
        best = [r["best_epoch"] for r in history if r.get("stage") == stage and "best_epoch" in r]
        box = (
            i * PANEL_W + MARGIN["left"],
            MARGIN["top"],
            (i + 1) * PANEL_W - MARGIN["right"],
            PANEL_H - MARGIN["bottom"],
        )
        _panel(draw, box, name, rows, left, right, best[0] if best else None)
    return _save(img, path)


def _panel(draw, box, name, rows, left, right, best) -> None:
    x0, y0, x1, y1 = box
    epochs = [r["epoch"] for r in rows]
    xs = _Scale(epochs + ([best] if best is not None else []), x0, x1, integer=True)
    series = [(key, label, COLORS[j], False) for j, (key, label) in enumerate(left)]
    series += [
        (key, label, COLORS[(len(left) + j) % len(COLORS)], True)
        for j, (key, label) in enumerate(right)
    ]
    scales = {
        dashed: _Scale([r.get(key) for r in rows for key, _, _, d in series if d == dashed], y1, y0)
        for dashed in (False, True)
    }
    draw.rectangle(box, outline=INK)
    _text(draw, ((x0 + x1) / 2, y0 - 6), name, 15, "md")
    for v, label in xs.ticks():
        draw.line([(xs(v), y1), (xs(v), y1 + 4)], fill=INK)
        _text(draw, (xs(v), y1 + 6), label, 13, "mt")
    _text(draw, ((x0 + x1) / 2, y1 + 26), "epoch", 14, "mt")
    for dashed, (edge, tick, anchor) in ((False, (x0, -4, "rm")), (True, (x1, 4, "lm"))):
        ys = scales[dashed]
        for v, label in ys.ticks():
            draw.line([(edge, ys(v)), (edge + tick, ys(v))], fill=INK)
            _text(draw, (edge + 1.5 * tick, ys(v)), label, 13, anchor)
    if best is not None:
        _dashes(draw, [(xs(best), y0), (xs(best), y1)], GRID, (2, 3), 1)
    lines = []
    for key, label, color, dashed in series:
        ys = scales[dashed]
        points = [
            (xs(e), ys(r.get(key))) if _finite(r.get(key)) else None for e, r in zip(epochs, rows)
        ]
        for run in _runs(points):
            if dashed:
                _dashes(draw, run, color, (7, 4), 2)
            elif len(run) > 1:
                draw.line(run, fill=color, width=2, joint="curve")
            else:
                draw.ellipse(
                    [run[0][0] - 2, run[0][1] - 2, run[0][0] + 2, run[0][1] + 2], fill=color
                )
        lines.append((label, color, dashed, [p for p in points if p]))
    _legend(draw, box, lines)


def _legend(draw, box, lines) -> None:
    """matplotlib's loc="best", simplified: the inner corner covering the fewest points."""
    width = 34 + max(font(11).getlength(label) for label, *_ in lines)
    height = 8 + 15 * len(lines)
    x0, y0, x1, y1 = box
    corners = [
        (x1 - width - 6, y0 + 6),
        (x0 + 6, y0 + 6),
        (x0 + 6, y1 - height - 6),
        (x1 - width - 6, y1 - height - 6),
    ]

    def covered(corner):
        cx, cy = corner
        return sum(
            cx <= px <= cx + width and cy <= py <= cy + height
            for *_, points in lines
            for px, py in points
        )

    lx, ly = min(corners, key=covered)
    draw.rectangle([lx, ly, lx + width, ly + height], fill=WHITE, outline=(204, 204, 204))
    for k, (label, color, dashed, _) in enumerate(lines):
        y = ly + 11 + 15 * k
        sample = [(lx + 6, y), (lx + 28, y)]
        if dashed:
            _dashes(draw, sample, color, (7, 4), 2)
        else:
            draw.line(sample, fill=color, width=2)
        _text(draw, (lx + 32, y), label, 11, "lm")


def confusion(
    matrix: list[list[int]], classes: list[str], minority: list[str], path: Path, title: str
) -> Path:
    """Counts per (true row, predicted column), shaded as matplotlib's imshow(cmap="Blues")
    would; minority classes marked with *; zero cells left blank."""
    n = len(classes)
    cell = 40
    labels = [f"{c}*" if c in minority else c for c in classes]
    label_w = int(max((font(12).getlength(s) for s in labels), default=0)) + 8
    left, top, right, bottom = label_w + 30, 34, 12, label_w + 30
    img = Image.new("RGB", (left + n * cell + right, top + n * cell + bottom), WHITE)
    draw = ImageDraw.Draw(img)
    _text(draw, (left + n * cell / 2, 8), title, 14, "mt")
    flat = [v for row in matrix for v in row]
    lo, hi = (min(flat), max(flat)) if flat else (0, 0)
    blues = _blues()
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            share = 0.0 if hi == lo else (v - lo) / (hi - lo)
            rgb = blues[round(share * 255)]
            x, y = left + j * cell, top + i * cell
            draw.rectangle([x, y, x + cell, y + cell], fill=rgb)
            if v:
                _text(
                    draw,
                    (x + cell / 2, y + cell / 2),
                    str(v),
                    10,
                    "mm",
                    WHITE if share > 0.6 else INK,
                )
    draw.rectangle([left, top, left + n * cell, top + n * cell], outline=INK)
    for k, label in enumerate(labels):
        mid = top + k * cell + cell / 2
        _text(draw, (left - 6, mid), label, 12, "rm")
        _vertical(draw, label, 12, (left + k * cell + cell / 2, top + n * cell + 6))
    _text(draw, (left + n * cell / 2, img.height - 6), "predicted", 13, "md")
    _vertical(draw, "true (* minority)", 13, (6, top + n * cell / 2), centre=True)
    return _save(img, path)


@lru_cache(maxsize=1)
def _blues() -> list[tuple[int, int, int]]:
    """matplotlib's "Blues" colormap as 256 RGB colours."""
    rgb = (colormaps["Blues"](k / 255)[:3] for k in range(256))
    return [(int(255 * r), int(255 * g), int(255 * b)) for r, g, b in rgb]


def _text(draw, xy, text: str, px: int, anchor: str = "la", fill=INK) -> None:
    """draw.text with DejaVu Sans at `px`, from a cache of rendered strings: a trial's
    figures repeat most of theirs (tick labels, counts, class names)."""
    mask, left, top = _stamp(text, px, anchor)
    draw.bitmap((round(xy[0] + left), round(xy[1] + top)), mask, fill=fill)


def _vertical(draw, text: str, px: int, at, centre: bool = False) -> None:
    """`text` turned 90 degrees (read bottom to top): its top end at `at`, or its middle at
    `at` with `centre`, as matplotlib's rotated tick labels and y label."""
    mask = _turned(text, px)
    x = at[0] if centre else at[0] - mask.width / 2
    y = at[1] - mask.height / 2 if centre else at[1]
    draw.bitmap((round(x), round(y)), mask, fill=INK)


@lru_cache(maxsize=4096)
def _stamp(text: str, px: int, anchor: str) -> tuple[Image.Image, int, int]:
    """`text` rendered as a mask, and the offset of its box from the anchor point."""
    # Whole pixels without a stroke (Pillow annotates it as float, for a fractional stroke).
    left, top, right, bottom = (int(v) for v in font(px).getbbox(text, anchor=anchor))
    mask = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(mask).text((-left, -top), text, fill=255, font=font(px), anchor=anchor)
    return mask, left, top


@lru_cache(maxsize=1024)
def _turned(text: str, px: int) -> Image.Image:
    return _stamp(text, px, "la")[0].rotate(90, expand=True)


class _Scale:
    """Data to pixels on one axis, with matplotlib's 5 % margins and its tick choice."""

    def __init__(self, values, start: float, end: float, integer: bool = False):
        finite = [float(v) for v in values if _finite(v)]
        lo, hi = (min(finite), max(finite)) if finite else (0.0, 1.0)
        if hi == lo:
            pad = abs(lo) * 0.05 or 0.5
            lo, hi = lo - pad, hi + pad
        margin = 0.05 * (hi - lo)
        self.lo, self.hi = lo - margin, hi + margin
        self.start, self.end, self.integer = start, end, integer

    def __call__(self, v: float) -> float:
        return self.start + (float(v) - self.lo) / (self.hi - self.lo) * (self.end - self.start)

    def ticks(self) -> list[tuple[float, str]]:
        values = MaxNLocator(nbins=5, integer=self.integer).tick_values(self.lo, self.hi)
        values = [v for v in values if self.lo <= v <= self.hi]
        step = values[1] - values[0] if len(values) > 1 else 1.0
        digits = 0 if self.integer else max(0, -math.floor(math.log10(step) + 1e-9))
        if not self.integer and round(step, digits) != round(step, digits + 2):
            digits += 1  # a step such as 0.25
        return [(v, f"{v:.{digits}f}") for v in values]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _runs(points):
    """The unbroken stretches of a line whose missing values (None) are gaps."""
    run = []
    for p in points + [None]:
        if p is None:
            if run:
                yield run
            run = []
        else:
            run.append(p)


def _dashes(draw, points, color, pattern, width) -> None:
    """A polyline drawn on/off by `pattern` (px), continuing the pattern across corners."""
    on, off = pattern
    phase, drawing = 0.0, True
    for (ax, ay), (bx, by) in zip(points, points[1:]):
        length = math.hypot(bx - ax, by - ay)
        t = 0.0
        while t < length:
            left = (on if drawing else off) - phase
            step = min(left, length - t)
            if drawing:
                a, b = t / length, (t + step) / length
                draw.line(
                    [
                        (ax + (bx - ax) * a, ay + (by - ay) * a),
                        (ax + (bx - ax) * b, ay + (by - ay) * b),
                    ],
                    fill=color,
                    width=width,
                )
            t += step
            phase += step
            if phase >= (on if drawing else off):
                phase, drawing = 0.0, not drawing
    if len(points) == 1:
        x, y = points[0]
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=color)


def _save(img: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG", compress_level=1, compress_type=3)  # zlib RLE: fast, and these
    # flat images compress well with it
    return path
