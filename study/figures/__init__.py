"""study.figures: a study's figures: a trial's PNGs drawn with Pillow (after its run is
FINISHED, by its worker's drawing thread), and the paper's curves with matplotlib."""

from study._lazy import face

_NAMES = {
    "trial_figures": "trial_png",
    "Drawer": "late",
    "draw_pending": "late",
    "curves": "plots",
}
__all__ = sorted(_NAMES)
__getattr__ = face(__name__, _NAMES)
