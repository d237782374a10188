"""The reference tools, driven through their own command lines: Omnipose 1.1.4 and Cellpose 3.

Each lives in its own virtual environment (``OMNIPOSE_VENV``, default /tmp/omnipose-venv, made
by ``../shared/peers/setup_omnipose.sh``; ``CELLPOSE_VENV``, default /tmp/cellpose-venv, made by
``bench/peers/setup_cellpose.sh``). A benchmark reports a peer whose environment is missing as
skipped. Both tools write their models into ``<dir>/models`` and their masks beside their
inputs unless told otherwise, so they are always given folders of links (see
:func:`_common.link_folder`), never the shared data itself.

Both write predicted masks as ``<base>_cp_masks.tif`` (:data:`MASK_FILTER`).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

from _common import CELLPOSE_PY, OMNIPOSE_PY, Measured, run_measured

#: Name suffix of the mask files both peers write.
MASK_FILTER = "_cp_masks"


class PeerFailed(RuntimeError):
    """A peer run ended without the expected result (its log says why)."""


@dataclass(frozen=True)
class Peer:
    """A reference tool and the interpreter of its virtual environment.

    Attributes
    ----------
    key : str
        Short name used in options and result names.
    label : str
        Name and version for people.
    python : Path
        Interpreter of its virtual environment.
    setup : str
        Command that creates the environment.
    """

    key: str
    label: str
    python: Path
    setup: str

    @property
    def available(self) -> bool:
        """Whether its virtual environment exists."""
        return self.python.exists()

    def skip_reason(self) -> str:
        """Why it cannot run, for the ``SKIPPED`` line."""
        return f"{self.python} not found; create it with `{self.setup}`"


OMNIPOSE = Peer("omnipose", "Omnipose 1.1.4", OMNIPOSE_PY, "bash ../shared/peers/setup_omnipose.sh")
CELLPOSE = Peer("cellpose3", "Cellpose 3", CELLPOSE_PY, "bash bench/peers/setup_cellpose.sh")
PEERS = {p.key: p for p in (OMNIPOSE, CELLPOSE)}


@dataclass(frozen=True)
class Trained:
    """A model produced under a time budget.

    Attributes
    ----------
    model : Path
        The model file.
    seconds : float
        Wall-clock time of the training run (process start, or data loading, to saved model).
    epochs : int
        Epochs completed.
    note : str
        How the run was bounded, for the report.
    """

    model: Path
    seconds: float
    epochs: int
    note: str


def _check(run: Measured, what: str, log: Path) -> None:
    if run.returncode and not run.stopped:
        raise PeerFailed(f"{what} exited with status {run.returncode}; see {log}")


# --- Omnipose ------------------------------------------------------------------------------


def omnipose_train(train_dir: Path, seconds: float, log: Path) -> Trained:
    """Train an Omnipose model from scratch until a wall-clock deadline, with its CLI.

    The paper's recipe (``--RAdam --learning_rate 0.1``, a constant rate, so stopping at any
    epoch is a finished schedule) with the crops and batch of the other tools (224x224, 8).
    ``--allow_blank_masks`` lets it take crops without cells, as the other tools do; without it
    1.1.4 aborts on sparse BBBC039 images ("Sparse or over-dense image detected"). A checkpoint
    is kept after every epoch (``--save_each``); the process is killed at the deadline and the
    last checkpoint written before it is the model.

    Parameters
    ----------
    train_dir : Path
        Absolute folder of ``<base>.tif`` + ``<base>_masks.tif`` links; models go to its
        ``models/`` folder.
    seconds : float
        Budget, from the process start.
    log : Path
        File for its output.

    Returns
    -------
    Trained
        The last complete checkpoint.

    Raises
    ------
    PeerFailed
        When it crashed or wrote no checkpoint before the deadline.
    """
    cmd = [str(OMNIPOSE.python), "-m", "omnipose", "--train", "--dir", str(train_dir)]
    cmd += ["--pretrained_model", "None", "--nchan", "1", "--nclasses", "2", "--diameter", "0"]
    cmd += ["--learning_rate", "0.1", "--RAdam", "--batch_size", "8", "--tyx", "224,224"]
    cmd += ["--n_epochs", "100000", "--save_every", "1", "--save_each", "--allow_blank_masks"]
    cmd += ["--verbose"]
    run = run_measured(cmd, timeout=seconds, log=log)
    killed_at = time.time()
    _check(run, "Omnipose training", log)
    # A file changed in the last seconds before the kill may be half written: skip it.
    done = {}
    for path in (train_dir / "models").glob("*_epoch_*"):
        match = re.search(r"_epoch_(\d+)$", path.name)
        if match and path.stat().st_mtime < killed_at - 3:
            done[int(match.group(1))] = path
    if not done:
        raise PeerFailed(
            f"Omnipose did not finish its first epoch within {seconds:.0f} s, so it has no model "
            f"for this budget (give it more --minutes); its output is in {log}"
        )
    last = max(done)
    return Trained(done[last], run.seconds, last + 1, "killed at the deadline")


def omnipose_predict_cmd(model: Path, images: Path, out: Path) -> list[str]:
    """Omnipose's CLI segmenting a folder, masks to ``out`` as ``<base>_cp_masks.tif``.

    Parameters
    ----------
    model : Path
        A model trained with ``--nchan 1 --nclasses 2`` (Omnipose files do not record it).
    images : Path
        Absolute folder of images.
    out : Path
        Output folder.

    Returns
    -------
    list of str
        The command; its defaults otherwise (suppression, flow threshold 0.4, no rescaling).
    """
    cmd = [str(OMNIPOSE.python), "-m", "omnipose", "--dir", str(images)]
    cmd += ["--pretrained_model", str(model), "--nchan", "1", "--nclasses", "2"]
    return cmd + ["--save_tif", "--no_npy", "--savedir", str(out)]


# --- Cellpose 3 ----------------------------------------------------------------------------

_CELLPOSE_EPOCH = re.compile(r"\b(\d+) train_loss=\S+ test_loss=\S+ LR=\S+ time ([\d.]+)s")


def _cellpose_train_cmd(train_dir: Path, n_epochs: int, name: str) -> list[str]:
    cmd = [str(CELLPOSE.python), "-m", "cellpose", "--train", "--dir", str(train_dir)]
    cmd += ["--pretrained_model", "None", "--chan", "0", "--chan2", "0"]
    cmd += ["--n_epochs", str(n_epochs), "--batch_size", "8", "--min_train_masks", "1"]
    cmd += ["--save_every", str(max(1, n_epochs // 5)), "--model_name_out", name, "--verbose"]
    return cmd


def cellpose_epochs_for(
    train_dir: Path, seconds: float, n_images: int, log: Path, *, crops: int = 16
) -> int:
    """Epochs of Cellpose training that fit in ``seconds``, from a short timing run.

    Cellpose has no wall-clock stop, and its learning rate depends on ``n_epochs`` (warm-up,
    then halvings over the last 50 or 100 epochs), so the run is sized beforehand: a timing
    run prepares the data as the real run will (flows of every label image), trains 6 epochs
    of ``crops`` crops and is killed; its log gives the preparation time and the time per crop.

    Parameters
    ----------
    train_dir : Path
        Absolute folder of training links.
    seconds : float
        Budget of the real run, from its process start.
    n_images : int
        Training images (crops per epoch of the real run).
    log : Path
        File for its output.
    crops : int
        Crops per epoch of the timing run.

    Returns
    -------
    int
        At least 1.

    Raises
    ------
    PeerFailed
        When the timing run printed no epoch times.
    """
    seen: dict[int, tuple[float, float]] = {}  # epoch -> (seconds since start, its own time)

    def watch(line: str, t: float) -> bool:
        match = _CELLPOSE_EPOCH.search(line.replace(",", ""))
        if match:
            seen[int(match.group(1))] = (t, float(match.group(2)))
        return 5 in seen

    cmd = _cellpose_train_cmd(train_dir, 6, "timing") + ["--nimg_per_epoch", str(crops)]
    run = run_measured(cmd, stop_on=watch, log=log)
    _check(run, "the Cellpose timing run", log)
    if 0 not in seen or 5 not in seen:
        raise PeerFailed(f"the Cellpose timing run printed no epoch times; see {log}")
    (wall0, own0), (_, own5) = seen[0], seen[5]
    prepare = wall0 - own0
    per_crop = (own5 - own0) / (5 * crops)
    fit = (seconds - prepare) * 0.97 / (per_crop * n_images)
    print(
        f"  Cellpose timing run: {prepare:.0f} s to prepare the data, {per_crop:.2f} s per crop "
        f"-> {max(1, math.floor(fit))} epochs fit in {seconds:.0f} s",
        flush=True,
    )
    return max(1, math.floor(fit))


def cellpose_train(train_dir: Path, n_epochs: int, seconds: float, log: Path) -> Trained:
    """Train a Cellpose 3 model from scratch with its CLI (its defaults otherwise).

    Its defaults: SGD, learning rate 0.2 with a 10-epoch warm-up, images rescaled to a mean
    cell diameter of 30 px (the mean diameter of the labels is saved with the model and used
    at prediction), 224x224 crops, batch 8; ``--min_train_masks 1`` keeps every image with a
    cell. The run is killed at 1.2 x ``seconds`` + 60 s if the sizing was wrong, and then uses
    the last periodic save.

    Parameters
    ----------
    train_dir : Path
        Absolute folder of training links; the model goes to ``models/cellpose3_bbbc039``.
    n_epochs : int
        From :func:`cellpose_epochs_for`.
    seconds : float
        The budget (for the safety kill and the report).
    log : Path
        File for its output.

    Returns
    -------
    Trained
        The model.

    Raises
    ------
    PeerFailed
        When it crashed or wrote no model.
    """
    name = "cellpose3_bbbc039"
    run = run_measured(
        _cellpose_train_cmd(train_dir, n_epochs, name), timeout=1.2 * seconds + 60, log=log
    )
    _check(run, "Cellpose training", log)
    model = train_dir / "models" / name
    if not model.exists():
        raise PeerFailed(f"Cellpose wrote no model {model}; see {log}")
    epochs = [int(m.group(1)) for m in _CELLPOSE_EPOCH.finditer(run.output.replace(",", ""))]
    note = "OVERRAN the budget and was killed" if run.stopped else "epochs sized to the budget"
    return Trained(
        model, run.seconds, n_epochs if not run.stopped else max(epochs, default=0), note
    )


def cellpose_predict_cmd(model: Path, images: Path, out: Path) -> list[str]:
    """Cellpose's CLI segmenting a folder, masks to ``out`` as ``<base>_cp_masks.tif``.

    ``--diameter 0`` uses the mean label diameter saved with a trained model, so images are
    rescaled as in training; other settings are its defaults.

    Parameters
    ----------
    model : Path
        A model file trained with :func:`cellpose_train`.
    images : Path
        Absolute folder of images.
    out : Path
        Output folder (it must exist).

    Returns
    -------
    list of str
        The command.
    """
    cmd = [str(CELLPOSE.python), "-m", "cellpose", "--dir", str(images)]
    cmd += ["--pretrained_model", str(model), "--chan", "0", "--chan2", "0", "--diameter", "0"]
    return cmd + ["--save_tif", "--no_npy", "--savedir", str(out)]
