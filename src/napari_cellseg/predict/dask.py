"""Prediction on a Dask cluster: a folder image by image, a huge image block by block.

:func:`connect` starts a :class:`~distributed.LocalCluster` (one single-threaded worker
process per core) or joins a running scheduler by its address (a SLURM, Kubernetes or Coiled
cluster started with dask-jobqueue, dask-kubernetes or Coiled; see
``docs/prediction_at_scale.md``). Each worker loads the model once, at its first task
(:func:`~napari_cellseg.predict.segmenter.cached_segmenter`), and keeps it for the others:
the tasks carry the options, never the weights. :func:`predict_folder` maps
:func:`~napari_cellseg.predict.files.segment_to_files` over the images, so every file is
written by its worker atomically; :func:`client_mapper` maps the passes of
:func:`~napari_cellseg.predict.blockwise.segment_chunked`. The tiling and the reconstruction
are the one-process ones: nothing is reimplemented here.

A task whose worker dies is run again elsewhere (the scheduler's ``allowed-failures``), one
that raises is retried ``retries`` times; an image that still fails is reported, not lost.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distributed import Client, LocalCluster, WorkerPlugin, as_completed
from distributed.scheduler import KilledWorker

from napari_cellseg.errors import CellsegError

if TYPE_CHECKING:
    from napari_cellseg.io.datasets import Sample
    from napari_cellseg.predict.config import PredictConfig

#: Times a task that raised an unexpected error is run again.
RETRIES = 2


class TorchThreads(WorkerPlugin):
    """Give each worker's torch as many threads as the worker has (1 on a LocalCluster)."""

    def setup(self, worker: Any) -> None:
        """Set torch's intra-op threads to the worker's thread count."""
        import torch

        torch.set_num_threads(max(1, int(worker.state.nthreads)))


def connect(
    address: str | None = None, *, workers: int | None = None, timeout: float = 10.0
) -> Client:
    """A client of a new local cluster, or of the scheduler at ``address``.

    Parameters
    ----------
    address
        ``tcp://host:8786`` (any scheduler address); None starts a
        :class:`~distributed.LocalCluster`.
    workers
        Worker processes of the local cluster (default: one per core), one thread each.
    timeout
        Seconds to wait for the scheduler before giving up.

    Returns
    -------
    distributed.Client
        Connected, with :class:`TorchThreads` registered.

    Raises
    ------
    CellsegError
        If the scheduler does not answer within ``timeout``.
    """
    try:
        if address is None:
            cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
            )
            client = Client(cluster, timeout=timeout)
        else:
            client = Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        where = address or "a local cluster"
        raise CellsegError(
            f"--dask: could not reach the Dask scheduler at {where} within {timeout:g} s "
            f"({exc}); check the address (tcp://HOST:PORT, as the scheduler prints it) and "
            "that the scheduler is running and reachable from here"
        ) from exc
    client.register_plugin(TorchThreads(), name="napari-cellseg-torch-threads")
    return client


def close(client: Client) -> None:
    """Close the client, and the local cluster it started (a remote scheduler is left up)."""
    cluster = client.cluster
    client.close()
    if isinstance(cluster, LocalCluster):
        cluster.close()


def describe(client: Client) -> str:
    """One line for the user: the workers and the dashboard link."""
    n = len(client.scheduler_info(n_workers=-1).get("workers", {}))
    return f"Dask: {n} worker(s), dashboard {client.dashboard_link}"


def run_tasks(
    client: Client,
    function: Callable[..., Any],
    items: Sequence[Any],
    *,
    desc: str = "tasks",
    shared: Any = None,
    retries: int = RETRIES,
) -> list[tuple[Any, BaseException | None]]:
    """Run ``function(item, shared)`` for every item on the cluster, with a progress bar.

    Parameters
    ----------
    client
        The cluster.
    function
        A picklable function (module level, or a :func:`functools.partial` of one).
    items
        Its first arguments, one task each.
    desc
        The progress bar's label.
    shared
        A second argument common to all tasks, sent to every worker once (scattered).
    retries
        Times a task that raised is run again before its error is reported.

    Returns
    -------
    list of (result, error)
        In the order of ``items``: the result and None, or None and the error of a task
        that kept failing (its worker died each time: :class:`KilledWorker`).
    """
    from tqdm import tqdm

    common = client.scatter(shared, broadcast=True) if shared is not None else None
    futures = client.map(function, list(items), [common] * len(items), pure=False, retries=retries)
    index = {f.key: i for i, f in enumerate(futures)}
    done: list[tuple[Any, BaseException | None]] = [(None, None)] * len(futures)
    with tqdm(total=len(futures), unit="task", desc=desc, dynamic_ncols=True) as bar:
        for future in as_completed(futures):
            try:
                done[index[future.key]] = (future.result(), None)
            except (KilledWorker, CellsegError, OSError) as exc:
                done[index[future.key]] = (None, exc)
            bar.update()
    return done


def client_mapper(client: Client, *, desc: str = "blocks") -> Callable:
    """A :data:`~napari_cellseg.predict.blockwise.Mapper` that maps on ``client``.

    A block that fails for good stops the image with a :class:`CellsegError`.
    """

    def mapper(function: Callable, items: Sequence[Any], shared: Any) -> list:
        out = []
        for item, (result, error) in zip(
            items, run_tasks(client, function, items, desc=desc, shared=shared)
        ):
            if error is not None:
                raise CellsegError(f"block {item} failed on the cluster: {_why(error)}") from error
            out.append(result)
        return out

    return mapper


def _segment_task(item: tuple[Sample, dict[str, Path]], config: PredictConfig) -> str | None:
    """One image on a worker: its files written, or the error message (None when written)."""
    from napari_cellseg.predict.files import segment_to_files
    from napari_cellseg.predict.segmenter import cached_segmenter

    sample, paths = item
    seg = cached_segmenter(config)
    try:
        segment_to_files(seg, sample, paths, config, config.params_for(seg.arch))
    except CellsegError as err:
        return str(err)
    return None


def predict_folder(
    client: Client,
    outputs: Mapping[Sample, dict[str, Path]],
    config: PredictConfig,
) -> list[str]:
    """Segment every image on the cluster, each worker writing the files of its images.

    Parameters
    ----------
    client
        The cluster (:func:`connect`).
    outputs
        Each image's files (:func:`~napari_cellseg.predict.files.output_paths`).
    config
        The prediction options (each worker loads ``config.model`` once).

    Returns
    -------
    list of str
        ``"<image>: <why>"`` for each image that failed (none written for it).
    """
    items = list(outputs.items())
    failed = []
    for (sample, _), (message, error) in zip(
        items, run_tasks(client, _segment_task, items, desc="predict", shared=config)
    ):
        if error is not None:
            failed.append(f"{sample.image}: {_why(error)}")
        elif message is not None:
            failed.append(f"{sample.image}: {message}")
    return failed


def _why(error: BaseException) -> str:
    if isinstance(error, KilledWorker):
        return "its worker died each time it ran (out of memory?); run it again alone"
    return str(error)
