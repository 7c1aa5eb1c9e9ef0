"""Shared test fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def torch_one_thread():
    """Run a module's torch work on one thread: the test machine's cores are shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(False)  # set by deterministic training runs


# The notebooks executed once per session (papermill), shared by the notebook and browser tests.
from notebook_runs import generated, trained, work  # noqa: E402, F401

# Tiny trained runs built once per session, shared by the modules that use the same parameters.
from run_fixtures import responsive_run_dir, tiny_run_dir  # noqa: E402, F401
