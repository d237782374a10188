"""From tracking-network outputs to tracks: scores, attribution, continuation, division.

DeLTA's decoding (``getTrackingScores``, ``getAttributions``, ``Lineage.update``):

1. score[o, n] = the fraction of new cell ``n`` covered by seed ``o``'s output above
   ``hit_threshold`` (0.05);
2. each new cell goes to the best-scoring seed (score >= ``min_score``, 0.2) that counts it
   among its two best new cells, so a seed gets 0, 1 or 2 new cells;
3. 0: the track ends; 1: it continues; 2: it divided (both daughters start new tracks, as the
   Cell Tracking Challenge numbers them; the daughter keeping the mother's old pole keeps
   DeLTA's cell number); a new cell no seed took is an orphan (a new track without parent).

Pure numpy; the network runs in :mod:`napari_cellseg.track.engine`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from napari_cellseg.track.ctc import Track


def tracking_scores(
    probs: Sequence[np.ndarray],
    corners: Sequence[tuple[int, int]],
    labels: np.ndarray,
    new_ids: np.ndarray,
    *,
    hit_threshold: float = 0.05,
) -> np.ndarray:
    """Scores ``(n_seeds, n_new)``: the fraction of each new cell each seed's output covers.

    Parameters
    ----------
    probs
        Per seed, the ``(H, W)`` output window (probabilities).
    corners
        Per seed, the window's top-left corner in the frame (may be negative: padding).
    labels
        ``(Y, X)`` labels of frame t.
    new_ids
        The ids of frame t's cells, in the order of the score columns (an id absent from
        ``labels``, e.g. a cell too small to survive rescaling, scores 0).
    hit_threshold
        Output above which a pixel counts.
    """
    n_max = int(max(labels.max(), new_ids.max(initial=0))) + 1
    area = np.bincount(labels.ravel(), minlength=n_max).astype(np.float64)
    scores = np.zeros((len(probs), len(new_ids)), np.float32)
    for k, (prob, (y0, x0)) in enumerate(zip(probs, corners)):
        h, w = prob.shape
        ys = slice(max(y0, 0), min(y0 + h, labels.shape[0]))
        xs = slice(max(x0, 0), min(x0 + w, labels.shape[1]))
        if ys.stop <= ys.start or xs.stop <= xs.start:  # the window misses the frame
            continue
        win = labels[ys, xs]
        hit = prob[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] > hit_threshold
        counts = np.bincount(win[hit], minlength=n_max)
        scores[k] = counts[new_ids] / np.maximum(area[new_ids], 1)
    return scores


def attributions(scores: np.ndarray, min_score: float = 0.2) -> np.ndarray:
    """Which new cells each seed takes: bool ``(n_seeds, n_new)``, at most 2 per seed.

    A new cell goes to the best-scoring seed (score >= ``min_score``) whose two best new
    cells include it; if that seed has two better ones, the next seed is asked.
    """
    n_seeds, n_new = scores.shape
    out = np.zeros(scores.shape, bool)
    if not n_seeds or not n_new:
        return out
    ranked = np.argsort(-scores, axis=1, kind="stable")[:, :2]
    top2 = [{int(n) for n in ranked[o] if scores[o, n] >= min_score} for o in range(n_seeds)]
    for n in range(n_new):
        for o in np.argsort(-scores[:, n], kind="stable"):
            if scores[o, n] < min_score:
                break
            if n in top2[o]:
                out[o, n] = True
                break
    return out


def poles(mask: np.ndarray, offset: Sequence[int] = (0, 0)) -> np.ndarray:
    """The two ends ``(2, 2)`` (y, x) of a cell along its long axis (``offset`` is added)."""
    pts = np.argwhere(mask).astype(np.float64) + np.asarray(offset, np.float64)
    centre = pts.mean(axis=0)
    if len(pts) < 2:
        return np.stack([centre, centre])
    cov = np.cov((pts - centre).T)
    axis = np.linalg.eigh(cov)[1][:, -1]
    proj = (pts - centre) @ axis
    return np.stack([pts[np.argmin(proj)], pts[np.argmax(proj)]])


@dataclass
class _Live:
    """A track alive in the last frame: its id, DeLTA cell number and poles (old first)."""

    id: int
    cell: int
    poles: np.ndarray


@dataclass
class Lineage:
    """Tracks built frame by frame from attributions.

    Feed frame 0 with :meth:`start`, then each frame with :meth:`update`; :meth:`tracks` gives
    the CTC table and :meth:`relabel` each frame's labels with track ids.

    Attributes
    ----------
    cells
        DeLTA's cell number of each track id (a mother keeps hers through divisions: the
        daughter with the old pole continues it).
    """

    begins: dict[int, int] = field(default_factory=dict)
    ends: dict[int, int] = field(default_factory=dict)
    parents: dict[int, int] = field(default_factory=dict)
    cells: dict[int, int] = field(default_factory=dict)
    #: per frame, (input label ids, their track ids)
    maps: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    _live: dict[int, _Live] = field(default_factory=dict)
    _next_id: int = 1
    _next_cell: int = 1

    def _new_track(self, frame: int, parent: int, cell: int | None, pole: np.ndarray) -> int:
        tid = self._next_id
        self._next_id += 1
        self.begins[tid], self.ends[tid], self.parents[tid] = frame, frame, parent
        if cell is None:
            cell, self._next_cell = self._next_cell, self._next_cell + 1
        self.cells[tid] = cell
        self._live[tid] = _Live(tid, cell, pole)
        return tid

    def start(self, labels: np.ndarray) -> None:
        """Frame 0: every cell starts a track."""
        ids = _ids(labels)
        ends = all_poles(labels)
        tracks = np.array([self._new_track(0, 0, None, ends[i]) for i in ids.tolist()], np.int64)
        self.maps.append((ids, tracks))

    def update(self, labels: np.ndarray, seeds: np.ndarray, attributed: np.ndarray) -> None:
        """Add frame t (``len(self.maps)``).

        Parameters
        ----------
        labels
            Frame t's labels (input ids).
        seeds
            Input ids of frame t-1's cells, in the order of ``attributed``'s rows.
        attributed
            From :func:`attributions`: bool ``(len(seeds), n_new)``, columns in the order of
            frame t's ids (ascending).
        """
        frame = len(self.maps)
        ids = _ids(labels)
        ends = all_poles(labels)
        prev_ids, prev_tracks = self.maps[-1]
        track_of_seed = dict(zip(prev_ids.tolist(), prev_tracks.tolist()))
        out = np.zeros(len(ids), np.int64)
        live: dict[int, _Live] = {}
        for row, seed in enumerate(seeds.tolist()):
            tid = track_of_seed[seed]
            mother = self._live[tid]
            taken = np.flatnonzero(attributed[row])
            if len(taken) == 1:
                n = taken[0]
                out[n] = tid
                self.ends[tid] = frame
                live[tid] = _Live(tid, mother.cell, _follow(mother.poles, ends[int(ids[n])]))
            elif len(taken) == 2:
                d_poles = [ends[int(ids[n])] for n in taken]
                keeper = _old_pole_keeper(mother.poles, d_poles)
                for k, n in enumerate(taken):
                    cell = mother.cell if k == keeper else None
                    new = self._new_track(frame, tid, cell, _daughter_poles(d_poles, k))
                    out[n] = new
                    live[new] = self._live.pop(new)
        for n in np.flatnonzero(out == 0):
            new = self._new_track(frame, 0, None, ends[int(ids[n])])
            out[n] = new
            live[new] = self._live.pop(new)
        self._live = live
        self.maps.append((ids, out))

    def tracks(self) -> list[Track]:
        """The CTC track table."""
        return [
            Track(tid, self.begins[tid], self.ends[tid], self.parents[tid])
            for tid in sorted(self.begins)
        ]

    def relabel(self, frame: int, labels: np.ndarray) -> np.ndarray:
        """Frame ``frame``'s labels with track ids, int32."""
        ids, tracks = self.maps[frame]
        lut = np.zeros(int(labels.max()) + 1, np.int32)
        lut[ids] = tracks
        return lut[labels]


def all_poles(labels: np.ndarray) -> dict[int, np.ndarray]:
    """:func:`poles` of every cell of a label image, by id."""
    from scipy import ndimage as ndi

    out = {}
    for i, box in enumerate(ndi.find_objects(labels), start=1):
        if box is not None:
            out[i] = poles(labels[box] == i, (box[0].start, box[1].start))
    return out


def _ids(labels: np.ndarray) -> np.ndarray:
    ids = np.unique(labels)
    return ids[ids > 0]


def _follow(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """A continuing cell's poles in the old pole's order (minimum squared distance)."""
    straight = ((old - new) ** 2).sum()
    crossed = ((old - new[::-1]) ** 2).sum()
    return new if straight <= crossed else new[::-1]


def _old_pole_keeper(mother: np.ndarray, daughters: list[np.ndarray]) -> int:
    """Which daughter keeps the mother's old pole: the closest daughter poles are the new ones
    (the division site); of the two far poles, the one nearer the mother's old pole wins."""
    far = [_daughter_poles(daughters, k)[0] for k in range(2)]
    dist = [((p - mother[0]) ** 2).sum() for p in far]
    return int(np.argmin(dist))


def _daughter_poles(daughters: list[np.ndarray], k: int) -> np.ndarray:
    """Daughter ``k``'s poles, old (far from the division site) first."""
    a, b = daughters
    pairs = ((i, j) for i in range(2) for j in range(2))
    i, j = min(pairs, key=lambda ij: ((a[ij[0]] - b[ij[1]]) ** 2).sum())
    near = i if k == 0 else j
    own = daughters[k]
    return np.stack([own[1 - near], own[near]])
