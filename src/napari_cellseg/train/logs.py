"""The training logs: TensorBoard event files and a CSV log, both beside the model by default."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from napari_cellseg.config import TrainConfig


def csv_path(config: TrainConfig, model_path: Path) -> Path:
    """The CSV log: ``--csv_log``, else ``<model>.csv``."""
    return Path(config.csv_log) if config.csv_log else model_path.with_suffix(".csv")


class Logger:
    """TensorBoard event files and a CSV log, both beside the model by default."""

    def __init__(self, config: TrainConfig, model_path: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        tb_dir = Path(config.tb_dir) if config.tb_dir else model_path.parent / "tensorboard"
        self.tb = SummaryWriter(log_dir=str(tb_dir / model_path.stem))
        self.csv_path = csv_path(config, model_path)
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.csv_path.exists() or not config.resume
        self._csv_file = open(self.csv_path, "w" if new else "a", newline="")  # noqa: SIM115
        self._writer: csv.DictWriter | None = None
        self._new = new

    def step(self, step: int, loss: float, lr: float) -> None:
        """Log one optimiser step (TensorBoard only)."""
        self.tb.add_scalar("loss/train_step", loss, step)
        self.tb.add_scalar("lr", lr, step)

    def epoch(self, record: dict[str, Any]) -> None:
        """Log an epoch's record (losses, rate, time, loss parts) and flush it to disk."""
        e = int(record["epoch"])
        self.tb.add_scalar("loss/train", record["loss"], e)
        if record.get("val_loss") is not None:
            self.tb.add_scalar("loss/val", record["val_loss"], e)
        for k, v in record.items():
            if k not in ("epoch", "loss", "val_loss", "lr", "elapsed_s"):
                self.tb.add_scalar(f"parts/{k}", v, e)
        self.tb.flush()
        if self._writer is None:
            self._writer = csv.DictWriter(self._csv_file, fieldnames=list(record))
            if self._new:
                self._writer.writeheader()
        self._writer.writerow(
            {k: ("" if v is None else v) for k, v in record.items() if k in self._writer.fieldnames}
        )
        self._csv_file.flush()
        os.fsync(self._csv_file.fileno())

    def close(self) -> None:
        """Close both logs."""
        self.tb.close()
        self._csv_file.close()
