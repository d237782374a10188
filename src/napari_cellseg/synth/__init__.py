"""Synthetic microscopy with exact instance labels: the package's embedded default data.

Two still generators and a time-lapse one, all deterministic for a seed and fast enough to
run inside tests:

- :func:`bacteria` -- phase-contrast-like rod-shaped bacteria packed in touching microcolonies
  (dark cells with a bright halo, bright seams between touching cells, noise and uneven
  illumination), scaled like the phase-contrast E. coli images Omnipose was trained on
  (rods about 8-14 px wide and 2-4.5 widths long);
- :func:`nuclei` -- widefield fluorescence nuclei (textured, irregular ellipses of varying
  brightness, some touching pairs, a few small bright mitotic ones) on a dark background, scaled
  like BBBC039 (U2OS, Hoechst; about 30 px across in 12-bit counts);
- :func:`timelapse` -- movies of either kind in which the cells grow, move and divide, with
  labels whose ids are track ids and the exact lineage (a :class:`Timelapse`: images, labels,
  Cell Tracking Challenge track rows, per-frame geometry); the embedded default for tracking.

The still generators return ``(image, labels)``: ``image`` float32 ``(Y, X)`` in camera-like
counts, ``labels`` int32 ``(Y, X)`` with 0 for background and ``1..N`` consecutive, each label
one 4-connected component (the time-lapse's frames are drawn the same way, their ids are track
ids). A pixel carries the label of the object drawn over it; where two objects overlap,
the pixel goes to the object whose outline is farther away (the one it lies deeper inside), so
touching objects share an interface with no background seam, as in hand-made ground truth;
the thin notches left where outlines meet at an angle are closed as QC's gap fix closes them,
so the labels pass :func:`napari_cellseg.qc.run_qc` without a warning. :func:`make_dataset`
writes such pairs in the Omnipose layout.

Modules: :mod:`.phase_contrast` (bacteria), :mod:`.fluorescence` (nuclei), :mod:`.timelapse`
(:func:`timelapse`), :mod:`.dataset` (:func:`make_dataset`) and :mod:`.canvas` (what the
generators share: random fields, illumination, camera noise, label cleanup).
"""

from napari_cellseg.synth.dataset import make_dataset
from napari_cellseg.synth.fluorescence import nuclei
from napari_cellseg.synth.phase_contrast import bacteria
from napari_cellseg.synth.timelapse import Timelapse, timelapse

__all__ = ["bacteria", "nuclei", "make_dataset", "timelapse", "Timelapse"]
