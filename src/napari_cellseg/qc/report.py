"""What a QC run finds: :class:`Problem` (one finding) and :class:`QCReport` (all of one mask)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

#: Every check, in report order, with its severity. ``blocking`` problems make training on the
#: mask wrong (exit status 1 in ``cellseg qc``); ``warning`` problems deserve a look; ``info``
#: findings describe the data and are often intended.
SEVERITY: dict[str, str] = {
    "unreadable": "blocking",
    "float_mask": "blocking",
    "shape_mismatch": "blocking",
    "too_many_labels": "blocking",
    "semantic_mask": "blocking",
    "split_label": "blocking",
    "empty_mask": "warning",
    "gap": "warning",
    "fragment": "warning",
    "border": "info",
    "blobs_label": "info",
    "non_consecutive": "info",
}

#: Check names in report order (blocking, then warning, then info).
CHECKS: tuple[str, ...] = tuple(SEVERITY)


@dataclass(frozen=True)
class Problem:
    """One finding of a check.

    Parameters
    ----------
    check : str
        The check that found it, one of :data:`CHECKS`.
    severity : str
        ``'blocking'``, ``'warning'`` or ``'info'`` (see :data:`SEVERITY`).
    message : str
        A sentence for people: what is wrong, where, and what to do.
    labels : tuple of int
        The label ids concerned (empty for whole-mask problems).
    bbox : tuple of int, optional
        ``(y0, x0, y1, x1)``, half-open, in image coordinates; ``None`` for whole-mask
        problems.
    fixable : bool
        Whether :func:`napari_cellseg.qc.fix` can repair it.
    """

    check: str
    severity: str
    message: str
    labels: tuple[int, ...] = ()
    bbox: tuple[int, int, int, int] | None = None
    fixable: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return the problem as JSON-safe builtins (lists instead of tuples)."""
        return {
            "check": self.check,
            "severity": self.severity,
            "message": self.message,
            "labels": [int(v) for v in self.labels],
            "bbox": None if self.bbox is None else [int(v) for v in self.bbox],
            "fixable": self.fixable,
        }


@dataclass
class QCReport:
    """All problems found in one label matrix (or one mask file).

    Parameters
    ----------
    problems : list of Problem
        The findings, in :data:`CHECKS` order.
    shape : tuple of int
        Shape of the label matrix (empty when the file could not be read).
    n_labels : int
        Number of distinct non-zero label ids.
    source : str
        Where the labels come from (file or layer name), for messages.
    """

    problems: list[Problem]
    shape: tuple[int, ...]
    n_labels: int
    source: str = ""

    @property
    def blocking(self) -> bool:
        """Whether any problem is blocking (the mask should not be trained on as it is)."""
        return any(p.severity == "blocking" for p in self.problems)

    def counts(self) -> dict[str, int]:
        """Return the number of problems per check (checks with none are left out)."""
        found = Counter(p.check for p in self.problems)
        return {check: found[check] for check in CHECKS if found[check]}

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-safe builtins."""
        return {
            "source": self.source,
            "shape": [int(v) for v in self.shape],
            "n_labels": int(self.n_labels),
            "blocking": self.blocking,
            "counts": self.counts(),
            "problems": [p.to_dict() for p in self.problems],
        }

    def summary(self, max_per_check: int = 3) -> str:
        """Return a multi-line human summary: a headline, then one block per check.

        Parameters
        ----------
        max_per_check : int
            How many individual problems to list per check before ``... and N more``.

        Returns
        -------
        str
            The summary text.
        """
        name = self.source or "labels"
        shape = "x".join(str(v) for v in self.shape) or "?"
        if not self.problems:
            return f"{name}: {self.n_labels} labels, {shape}: no problems"
        verdict = "BLOCKING problems" if self.blocking else "no blocking problem"
        lines = [f"{name}: {self.n_labels} labels, {shape}: {verdict}"]
        for check, n in self.counts().items():
            found = [p for p in self.problems if p.check == check]
            lines.append(f"  [{SEVERITY[check]}] {check}: {n}")
            lines.extend(f"    - {p.message}" for p in found[:max_per_check])
            if n > max_per_check:
                lines.append(f"    ... and {n - max_per_check} more")
        return "\n".join(lines)
