"""DeLTA-style tracking family: a U-Net that finds, at frame t, what one cell of frame t-1
became (itself, or its two daughters).

Its input is fixed: ``[image t, seed mask t-1, image t-1, all cells t]`` in a window centred on
the seed (:mod:`napari_cellseg.track.samples`); its output is one logit, trained with DeLTA's
pixel-weighted cross-entropy. Its models are used by ``cellseg track``
(:mod:`napari_cellseg.track.engine`), not by the segmentation engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_cellseg.errors import CellsegError
from napari_cellseg.families.base import Family, param, sigmoid

if TYPE_CHECKING:
    import torch

    from napari_cellseg.config import TrainConfig
    from napari_cellseg.families.base import LabelCrop, LossParts, Outputs
    from napari_cellseg.models import ModelSpec

#: Channels of the network input.
INPUT_CHANNELS = 4


@dataclass(frozen=True)
class TrackParams:
    """How tracking outputs become links (DeLTA's ``getTrackingScores`` / ``getAttributions``)."""

    hit_threshold: float = param(
        0.05, "output above which a pixel counts for a cell", minimum=0.0, maximum=1.0, step=0.01
    )
    min_score: float = param(
        0.2,
        "fraction of a new cell the seed's output must cover to link them",
        minimum=0.0,
        maximum=1.0,
        step=0.05,
    )


class TrackFamily(Family):
    """Tracking U-Net, DeLTA style."""

    name = "track"
    summary = "DeLTA-style tracking U-Net (links each cell to the next frame)"
    Params = TrackParams
    tracks = True

    def n_outputs(self, spec: ModelSpec) -> int:
        """One logit: the seed cell (and its daughter) at frame t."""
        return 1

    def input_channels(self, config: TrainConfig) -> int:
        """Always 4: image t, seed t-1, image t-1, all cells t."""
        return INPUT_CHANNELS

    def spec_problems(self, spec: ModelSpec) -> list[str]:
        """The network must take the 4 tracking channels."""
        if spec.nchan != INPUT_CHANNELS:
            return [f"a track model takes {INPUT_CHANNELS} input channels, not {spec.nchan}"]
        return []

    def config_problems(self, config: TrainConfig) -> list[str]:
        """Segmentation-only options have no meaning here."""
        problems = super().config_problems(config)
        if config.chan or config.chan2:
            problems.append(
                "--chan/--chan2 pick image channels for segmentation; a track model reads one "
                "greyscale channel per frame: drop them"
            )
        if config.trim_method:
            problems.append(
                "--trim_method resizes whole images (CLB); a track model trains on windows "
                "centred on each cell (--tyx): drop --trim_method"
            )
        return problems

    def load_items(self, path: str, config: TrainConfig) -> list[Any]:
        """DeLTA's six folders or a Cell Tracking Challenge sequence."""
        from napari_cellseg.track.samples import load_track_items

        return load_track_items(path, config)

    def make_items(
        self,
        images: list[np.ndarray],
        labels: list[np.ndarray],
        config: TrainConfig,
        *,
        names: list[str],
        links: list[Any],
        tracks: list[Any] | None = None,
    ) -> list[Any]:
        """Samples of whole time-lapses: each array a ``(T, Y, X)`` movie whose label ids are
        consistent over time, with its track table (None: made from the labels, without
        divisions)."""
        from napari_cellseg.track.ctc import tracks_from_labels
        from napari_cellseg.track.samples import items_from_sequence

        items: list[Any] = []
        for k, (movie, lab) in enumerate(zip(images, labels)):
            table = (tracks or [None] * len(images))[k]
            if table is None:
                table = tracks_from_labels(np.asarray(lab))
            items += items_from_sequence(
                movie, np.asarray(lab), table, name=names[k], diameter=config.diameter
            )
        return items

    def crop_maker(self, config: TrainConfig, *, augment: bool) -> Any:
        """:class:`~napari_cellseg.track.samples.TrackCropMaker`."""
        from napari_cellseg.track.samples import TrackCropMaker

        return TrackCropMaker(config, augment=augment)

    def targets(self, crop: LabelCrop, config: TrainConfig) -> np.ndarray:
        """Not used: tracking targets come with the crop (``TrackCropMaker``)."""
        raise CellsegError("a track model trains on tracking samples, not on label crops")

    def loss(self, pred: torch.Tensor, target: torch.Tensor, config: TrainConfig) -> LossParts:
        """DeLTA's tracking loss: pixel-weighted cross-entropy, weight 0 = no loss."""
        from napari_cellseg import losses

        return losses.weighted_bce_loss(pred, target, return_parts=True, background_rule=False)

    def named_outputs(self, raw: np.ndarray, meta: dict[str, Any]) -> Outputs:
        """``prob``: where the seed cell is at frame t."""
        return {"prob": sigmoid(raw[0])}

    def reconstruct(self, outputs: Outputs, params: Any, *, device: str = "cpu") -> np.ndarray:
        """Tracking outputs are links, not labels: ``cellseg track`` uses them."""
        raise CellsegError(
            "this is a tracking model: it links cells across frames and does not segment; "
            "use `cellseg track --model <it>` (or the Track widget)"
        )
