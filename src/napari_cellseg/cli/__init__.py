"""The ``cellseg`` command line: argument parsing only, then calls into the core.

Each subcommand lives in its own module of this package and defines
``add_parser(subparsers) -> argparse.ArgumentParser`` and ``run(args) -> int``.
Subcommand modules import heavy libraries (torch) inside ``run`` so that ``cellseg --help``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from napari_cellseg import __version__
from napari_cellseg.errors import CellsegError

#: Subcommand modules of this package, in the order ``--help`` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "demo",
    "qc",
    "train",
    "make_weights",
    "make_tracking_set",
    "predict",
    "tune",
    "track",
    "evaluate",
    "export",
    "info",
    "import_cellpose",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``cellseg`` parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="cellseg",
        description="Cell segmentation: check annotations, train models, segment and evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS:
        module = importlib.import_module(f"{__name__}.{module_name}")
        sub_parser = module.add_parser(sub)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cellseg`` command.

    Parameters
    ----------
    argv
        Arguments without the program name; ``None`` reads ``sys.argv``.

    Returns
    -------
    int
        Exit status: 0 success, 1 the command found problems (e.g. QC), 2 a user error.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)  # e.g. for torchrun (train --ddp)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except CellsegError as exc:
        print(f"cellseg {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cellseg {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`, which stopped reading: not an error of ours.
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
