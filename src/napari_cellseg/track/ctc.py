"""Cell Tracking Challenge files: track tables, mask folders and sequences."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Track:
    """One row of a CTC track table (``man_track.txt`` / ``res_track.txt``).

    Attributes
    ----------
    id
        The label the track's cell carries in every frame from ``begin`` to ``end``.
    begin, end
        First and last frame (0-based, inclusive).
    parent
        The track it divided from, 0 for none.
    """

    id: int
    begin: int
    end: int
    parent: int = 0
