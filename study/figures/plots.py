"""Learning curves of every stage of a trial (the paper's Figures 3 and 4), drawn with
matplotlib for `fsvae-study figures`. Each trial's own PNGs in MLflow show the same panels,
drawn with Pillow by study/figures/trial_png.py (matplotlib's cost, once per trial, was most of the
harness's time per trial).
"""

from __future__ import annotations

from pathlib import Path

PANELS = (  # (stage, title, [(key, label)], right-axis keys)
    (
        "backbone",
        "Stage 1: backbone fine-tuning",
        [("train_loss", "train loss")],
        [("train_acc", "train acc"), ("val_acc", "val acc")],
    ),
    ("vae", "Stage 2: beta-VAE", [("recon", "reconstruction"), ("kl", "KL")], [("beta", "beta")]),
    (
        "classifier",
        "Stage 3: classifier",
        [("train_loss", "train loss")],
        [("train_acc", "train acc"), ("val_acc", "val acc"), ("val_acc_h", "val acc_h")],
    ),
)


def curves(history: list[dict], path: Path, title: str = "") -> Path | None:
    """One panel per stage present in `history` (fsvae progress rows with an epoch)."""
    panels = [p for p in PANELS if any(r.get("stage") == p[0] and "epoch" in r for r in history)]
    if not panels:
        return None
    # Imported here: PANELS alone (trial_png's, in every trial's worker) needs no matplotlib,
    # whose import costs ~0.4 s of CPU. No pyplot: no global state, no GUI backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(panels), 3.6))
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (stage, name, left, right) in zip(axes[0], panels):
        rows = [r for r in history if r.get("stage") == stage and "epoch" in r]
        epochs = [r["epoch"] for r in rows]
        for key, label in left:
            ax.plot(epochs, [r.get(key) for r in rows], label=label)
        ax.set_xlabel("epoch")
        ax.set_title(name, fontsize=10, y=1.0)  # a fixed place: placing it costs 0.2 s
        twin = ax.twinx()
        for i, (key, label) in enumerate(right):
            twin.plot(
                epochs,
                [r.get(key) for r in rows],
                label=label,
                linestyle="--",
                color=f"C{len(left) + i}",
            )
        best = [r["best_epoch"] for r in history if r.get("stage") == stage and "best_epoch" in r]
        if best:
            ax.axvline(best[0], color="grey", linewidth=0.8, linestyle=":")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = twin.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    # Fixed margins: the panels' labels are short and known, and tight_layout doubles the cost.
    fig.subplots_adjust(left=0.06, right=0.94, bottom=0.14, top=0.84, wspace=0.45)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
