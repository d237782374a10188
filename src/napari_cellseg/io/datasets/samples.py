"""What discovery finds: :class:`Sample` (one image, its mask and companions) and
:class:`Dataset` (the samples of a folder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One training or prediction item: an image file, its mask and companions.

    Attributes
    ----------
    name : str
        Unique within the dataset (base name; ``<subfolder>/<base>`` one level down; CLB
        ``<stem>#<page>``; CTC ``<seq>/tNNN``).
    image : pathlib.Path
        The image file.
    mask : pathlib.Path or None
        The label file, or None (prediction folders, ``require_masks=False``).
    links : pathlib.Path or None
        Omnipose ``<base>_links.txt``.
    weights : pathlib.Path or None
        DeLTA weight map (``wei/``).
    page : int or None
        CLB: page of ``image`` and ``mask`` that holds this sample.
    binary_mask : bool
        The mask may be a binary foreground image (DeLTA ``seg/``): if it holds a single
        non-zero value, :func:`load_mask` labels its connected components.
    """

    name: str
    image: Path
    mask: Path | None
    links: Path | None = None
    weights: Path | None = None
    page: int | None = None
    binary_mask: bool = False


@dataclass
class Dataset:
    """The samples found in a folder, with notes about what was skipped or is partial.

    Attributes
    ----------
    root : pathlib.Path
        The resolved folder given to :func:`discover`.
    convention : str
        ``'omnipose'``, ``'delta'``, ``'clb'`` or ``'ctc'``.
    samples : list of Sample
        In natural order of their names.
    warnings : list of str
        Non-fatal findings (masks without image, ignored files, sparse labels, ...).
    """

    root: Path
    convention: str
    samples: list[Sample]
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)
