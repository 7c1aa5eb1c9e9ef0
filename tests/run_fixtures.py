"""Tiny trained runs built once per test session and shared by the modules that use the same
parameters (``conftest.py`` registers the fixtures). Both train on one torch thread (the test
machine's cores are shared), as ``test_inversion.py`` always did.

The runs are shared: read them, never write into them (a test that saves next to a run copies it
first). Each run's store is ``run_dir.parent / "store.zarr"``."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_run import build_tiny_run


def _on_one_thread(build, *args, **kwargs) -> Path:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return build(*args, **kwargs)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory) -> Path:
    """``build_tiny_run`` with its defaults (8 samples, 1 epoch): a model that runs."""
    return _on_one_thread(build_tiny_run, tmp_path_factory.mktemp("tiny-run"))


@pytest.fixture(scope="session")
def responsive_run_dir(tmp_path_factory) -> Path:
    """A tiny run trained long enough (24 samples, 20 epochs at lr 1e-2, master seed 3, ~10 s) for
    its output to follow the permeability: what an inversion needs."""
    return _on_one_thread(
        build_tiny_run,
        tmp_path_factory.mktemp("responsive-run"),
        n_samples=24,
        epochs=20,
        lr=1e-2,
        master_seed=3,
    )
