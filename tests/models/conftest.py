"""Run the model tests on one thread: tiny networks gain nothing from more, and on a shared
CPU the OpenMP threads of a 2-thread run wait on each other (seen: 10x slower)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
