"""``cellseg info``: print a model's card (training data, metrics, command, versions)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``cellseg info``."""
    p = subparsers.add_parser(
        "info",
        help="show a model's card: training data, metrics, command, versions",
        description="Print the model card stored in a model file: what it was trained on "
        "(folders, images, cells, diameter), its final losses (and scores), the exact "
        "command, the package, torch and python versions, the date and the device. Models "
        "saved before cards existed show what their metadata holds.",
    )
    p.add_argument("model", metavar="MODEL", help="a built-in name, a model file or its yaml")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    return p


def run(args: argparse.Namespace) -> int:
    """Read the card and print it."""
    import json

    from napari_cellseg.export.card import card_text, model_card

    card = model_card(args.model)
    print(json.dumps(card, indent=2) if args.json else card_text(card))
    return 0
