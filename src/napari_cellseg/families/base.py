"""What a model family is: one class that says everything the rest of the code asks of it.

A family (``omni``, ``unet``, ``dcan``; next ``track``) declares its network's output channels,
the training targets made from a label crop, the loss, how raw outputs become named maps and
how those become instance labels, with a dataclass of reconstruction parameters (defaults,
help, CLI flags), and the checks of the options that only it knows. Training, prediction, the
checkpoint format, the CLI and the widgets ask :func:`napari_cellseg.families.get_family`
instead of testing the family's name.

Nothing here imports torch at module level: the napari manifest and readers import the
registry through the training options.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from napari_cellseg.errors import CellsegError

if TYPE_CHECKING:
    import torch

    from napari_cellseg.config import TrainConfig
    from napari_cellseg.models import ModelSpec

    #: A loss and its named components.
    LossParts = tuple[torch.Tensor, dict[str, torch.Tensor]]
    #: Named network outputs of one image.
    Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class LabelCrop:
    """One training crop's labels and what a family's targets need of its sample.

    Attributes
    ----------
    labels
        int32 ``(Y, X)`` instance labels of the crop.
    weights
        The sample's weight map, cropped alike (DeLTA ``wei/``), or None.
    links
        Pairs of label ids that are pieces of one object.
    blobs
        Label 1 marks CLB blobs (no loss there).
    """

    labels: np.ndarray
    weights: np.ndarray | None = None
    links: frozenset[tuple[int, int]] = frozenset()
    blobs: bool = False


def param(
    default: Any,
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    step: float | None = None,
) -> Any:
    """A reconstruction parameter: its default, help text and the range a widget offers.

    The CLI flag is ``--<name>``; ``None`` as the default means "automatic".
    """
    meta = {"help": help, "minimum": minimum, "maximum": maximum, "step": step}
    return field(default=default, metadata=meta)


def min_size_param() -> Any:
    """``min_size``, which every family's reconstruction has."""
    return param(15, "smallest object kept (pixels)", minimum=0, maximum=100_000)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, float32, without overflow warnings."""
    return (0.5 * (np.tanh(0.5 * x) + 1)).astype(np.float32)


@dataclass(frozen=True)
class NoParams:
    """A family whose reconstruction takes no parameters."""


class Family:
    """Base class of a model family; subclass it and :func:`~napari_cellseg.families.register`.

    Attributes
    ----------
    name
        The ``--architecture`` value and the ``arch`` stored in checkpoints.
    summary
        One line for help texts and the widgets.
    Params
        Frozen dataclass of the reconstruction parameters, fields made with :func:`param`.
    uses_nclasses
        Whether ``--nclasses`` means something to the family (``omni``: 2 or 3 fields); a
        fine-tuned model must then keep its value.
    tracks
        Whether its models link cells across frames (``cellseg track``) instead of segmenting
        one image; they are refused where a segmentation model is needed.
    cite
        The papers of the method, ``(text, DOI)``, cited by exported models.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    uses_nclasses: ClassVar[bool] = False
    tracks: ClassVar[bool] = False
    cite: ClassVar[tuple[tuple[str, str], ...]] = ()

    # -- network ------------------------------------------------------------------------
    def n_outputs(self, spec: ModelSpec) -> int:
        """Output channels of the network for ``spec``."""
        raise NotImplementedError

    def spec_problems(self, spec: ModelSpec) -> list[str]:
        """What is wrong with a model description for this family (empty: nothing)."""
        return []

    def build(self, spec: ModelSpec) -> torch.nn.Module:
        """A fresh network: the residual U-Net unless the family has its own."""
        from napari_cellseg.models.unet import ResUNet

        return ResUNet(spec)

    # -- training -----------------------------------------------------------------------
    def input_channels(self, config: TrainConfig) -> int:
        """Input channels of a new network: the image's (``--nchan``) unless the family fixes
        its own input."""
        return int(config.nchan)

    def load_items(self, path: str, config: TrainConfig) -> list[Any]:
        """The training samples of a folder (``+`` joins several)."""
        from napari_cellseg.train.samples import load_items

        return load_items(path, config)

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
        """Training samples from arrays in memory (napari layers): one per image frame.

        ``tracks`` (per array, a track table or None) matters to tracking families only.
        """
        from napari_cellseg.train.samples import make_items

        return make_items(images, labels, config, names=names, links=links)

    def crop_maker(self, config: TrainConfig, *, augment: bool) -> Any:
        """A callable ``(item, rng) -> (x, y)`` making one training (or validation) pair."""
        from napari_cellseg.train.samples import CropMaker

        return CropMaker(config, augment=augment)

    def config_problems(self, config: TrainConfig) -> list[str]:
        """Contradictions among the training options that only this family knows of."""
        if not self.uses_nclasses and config.nclasses == 3:
            return [
                f"--nclasses 3 (boundary field) is an omni option; --architecture "
                f"{self.name} predicts its own outputs: drop --nclasses"
            ]
        return []

    def targets(self, crop: LabelCrop, config: TrainConfig) -> np.ndarray:
        """Training targets ``(K, Y, X)`` float32 for one crop of labels (and weight map)."""
        raise NotImplementedError

    def loss(self, pred: torch.Tensor, target: torch.Tensor, config: TrainConfig) -> LossParts:
        """The loss of a batch of raw outputs against targets, and its named components."""
        raise NotImplementedError

    # -- prediction ---------------------------------------------------------------------
    def rescale_outputs(self, raw: np.ndarray, factor: float) -> np.ndarray:
        """Raw outputs of an image resized by ``factor``, brought back to its pixels.

        Called after the maps were resized back; the default changes nothing (probabilities,
        directions). Families whose outputs are lengths in pixels divide them by ``factor``.
        """
        return raw

    def output_channels(self, spec: ModelSpec, meta: dict[str, Any]) -> list[tuple[str, str]]:
        """Name and meaning of each raw output channel, for the users of an exported network
        (who read them without :meth:`named_outputs`)."""
        return [(f"output{k}", "raw network output") for k in range(self.n_outputs(spec))]

    def named_outputs(self, raw: np.ndarray, meta: dict[str, Any]) -> Outputs:
        """Raw network outputs ``(K, Y, X)`` -> named maps (probabilities where they apply).

        ``meta`` is the checkpoint's metadata (e.g. the final activation it was trained with).
        """
        raise NotImplementedError

    def reconstruct(self, outputs: Outputs, params: Any, *, device: str = "cpu") -> np.ndarray:
        """Instance labels ``(Y, X)`` from named outputs and a :attr:`Params` instance."""
        raise NotImplementedError

    # -- parameters ---------------------------------------------------------------------
    def params(self, **given: Any) -> Any:
        """A :attr:`Params` from the given values (``None`` keeps the default, except for
        parameters whose default is ``None``, i.e. automatic).

        Raises
        ------
        CellsegError
            For a parameter the family does not have, listing the ones it has.
        """
        known = {f.name: f for f in dataclasses.fields(self.Params)}
        unknown = sorted(set(given) - set(known))
        if unknown:
            names = ", ".join(known) or "none"
            raise CellsegError(
                f"{', '.join(unknown)} do(es) not apply to {self.name} models; "
                f"their options are {names}"
            )
        kept = {k: v for k, v in given.items() if v is not None or known[k].default is None}
        return self.Params(**kept)

    def __repr__(self) -> str:
        return f"<family {self.name}>"
