"""The built-in ``nuclei`` model gives the labels it gave before the code was reorganised.

The digests were recorded with the code as it stood before the family registry and the
prediction engine (commit 7ff192c), in float32 (``amp="off"``) on an AVX-512 CPU: float
convolutions may round differently on another instruction set, so there the test is skipped
rather than failed. It needs the real ``bbbc039/val`` images (``../shared/data``).
"""

from __future__ import annotations

import hashlib

import pytest
import tifffile

REFERENCE_ISA = "AVX512"
#: sha256 of the uint16 labels of the first four bbbc039/val images (sorted by name).
DIGESTS = {
    "IXMtest_A02_s1": "4a870b26b2c85bc0127a81b0287125f6958add242f98c9b0d3b6397a568b1149",
    "IXMtest_B04_s4": "3932e120d7d02011de81c204d955a7e5fff9c675804061b7fc95966a3e6f452d",
    "IXMtest_B12_s2": "6cc0a29581e8b58e77b3e4cdf4c4c531d66da4ebdc09b8b65a7b014837fd236e",
    "IXMtest_B17_s7": "8dc9b8c36e77187ef13fb844aafde348fa493b49228508dd9d2ea89eaa71c838",
}


def test_nuclei_labels_on_bbbc039_val_are_identical_to_before(shared_data):
    import torch

    from napari_cellseg.predict import Segmenter, predict_frames, results

    if torch.backends.cpu.get_cpu_capability() != REFERENCE_ISA:
        pytest.skip(f"digests recorded on {REFERENCE_ISA}; float rounding differs elsewhere")
    images = sorted(
        p for p in (shared_data / "bbbc039" / "val").glob("*.tif") if "_masks" not in p.name
    )[: len(DIGESTS)]
    assert len(images) == len(DIGESTS)
    seg = Segmenter.from_file("nuclei", device="cpu", amp="off")
    got = {}
    for path in images:
        (done,) = results(predict_frames(seg, seg.prepare(tifffile.imread(path))))
        assert done.labels.dtype.name == "uint16" and done.labels.max() > 50
        got[path.name[:14]] = hashlib.sha256(done.labels.tobytes()).hexdigest()
    assert got == DIGESTS
