"""Ensemble generation with dask.distributed: one task per pending store chunk, resumable.

Each task draws, simulates and writes the samples of one chunk of the store (``run_chunk``); it
writes its data region, then its ledger entries, so an interrupted run loses at most the chunks in
flight and ``resume`` recomputes exactly those. Because sample ``i`` depends only on the master seed
and ``i``, a resumed store equals an uninterrupted one bit for bit.

One sample's work is bounded: the scenario space caps the injection rate and each simulation has
a step budget (``SimulationConfig.max_steps``); a sample that exceeds it is reported failed by
index and seed (not retried: it would fail again). The run holds the store's write lock, so two
``generate`` runs never write one store; ``repair`` regenerates samples found damaged.

Testing aid: the environment variable ``CCS_FNO_FAIL_SAMPLES`` (comma-separated sample indices)
makes those samples raise inside the worker, so retry and failure reporting can be exercised on a
real cluster. Every invalid scenario is rejected before generation starts, so no real input can
fail only some samples.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from dask.distributed import Client, LocalCluster, as_completed
from tqdm.auto import tqdm

from data_gen.integrity import DamagedSample, ledger, pending_chunks, reset_ledger, verify_store
from data_gen.lock import store_lock
from data_gen.physics import StepBudgetExceeded
from data_gen.scenarios import ScenarioSpace, run_scenario, sample_scenario, sample_seed
from data_gen.store import (
    StoreConfig,
    create_store,
    new_chunk_arrays,
    put_sample,
    write_chunk,
)

FAIL_SAMPLES_ENV = "CCS_FNO_FAIL_SAMPLES"


@dataclass(frozen=True)
class SampleFailure:
    """A sample that still raised after all its attempts."""

    index: int
    seed: int
    attempts: int
    error: str

    def __str__(self) -> str:
        return f"sample {self.index} (seed {self.seed}) failed after {self.attempts} attempt(s): {self.error}"


@dataclass(frozen=True)
class ChunkOutcome:
    """What one chunk task did; wall times in seconds (simulate: scenario + geology + flow), and
    the CPU time of the worker process meanwhile (below the wall time when cores are shared)."""

    chunk_index: int
    n_done: int
    failures: tuple[SampleFailure, ...]
    simulate_s: float
    write_s: float
    cpu_s: float


@dataclass(frozen=True)
class GenerateReport:
    """Result of ``generate``; ``simulate_s``, ``write_s`` and ``cpu_s`` sum this run's tasks."""

    path: str
    n_samples: int
    n_done: int  # samples done in the store after this run
    n_generated: int  # samples written by this run
    failures: tuple[SampleFailure, ...]
    wall_s: float
    simulate_s: float
    write_s: float
    cpu_s: float
    repaired: tuple[DamagedSample, ...] = ()  # done samples found damaged and regenerated

    @property
    def ok(self) -> bool:
        return not self.failures and self.n_done == self.n_samples

    def summary(self) -> str:
        text = (
            f"{self.path}: {self.n_done}/{self.n_samples} samples done "
            f"({self.n_generated} generated now, {len(self.failures)} failed) "
            f"in {self.wall_s:.1f} s"
        )
        if self.repaired:
            text += f"; {len(self.repaired)} damaged sample(s) regenerated"
        if self.simulate_s > 0:
            text += f"; writing took {100 * self.write_s / self.simulate_s:.1f} % of simulation time"
        return text


def _injected_failures() -> set[int]:
    raw = os.environ.get(FAIL_SAMPLES_ENV, "").strip()
    try:
        return {int(part) for part in raw.split(",") if part.strip()}
    except ValueError:
        raise ValueError(f"{FAIL_SAMPLES_ENV} must be comma-separated sample indices, got {raw!r}") from None


def run_chunk(path: str, config: StoreConfig, chunk_index: int, retries: int = 1) -> ChunkOutcome:
    """Generate and write chunk ``chunk_index`` of the store at ``path`` (a dask task).

    A sample that raises is tried ``retries`` more times (except when it ran out of its step
    budget, which would recur); if it still fails it is left not done (fill values) and reported,
    and the other samples of the chunk are written as usual.
    """
    forced = _injected_failures()
    arrays = new_chunk_arrays(config, chunk_index)
    samples = config.chunk_slice(chunk_index)
    done = np.zeros(samples.stop - samples.start, dtype=bool)
    failures = []
    start, start_cpu = time.perf_counter(), time.process_time()
    for row, index in enumerate(range(samples.start, samples.stop)):
        attempts = 0
        while not done[row] and attempts <= retries:
            attempts += 1
            try:
                if index in forced:
                    raise RuntimeError(f"injected failure ({FAIL_SAMPLES_ENV})")
                scenario = sample_scenario(config.space, config.master_seed, index)
                permeability_md, porosity, result = run_scenario(scenario, config.with_pressure)
            except StepBudgetExceeded as err:  # deterministic: another attempt would fail alike
                error = f"{type(err).__name__}: {err}"
                break
            except Exception as err:  # one bad sample must not sink its chunk
                error = f"{type(err).__name__}: {err}"
                continue
            put_sample(arrays, row, scenario, permeability_md, porosity, result)
            done[row] = True
        if not done[row]:
            seed = sample_seed(config.master_seed, index)
            failures.append(SampleFailure(index, seed, attempts, error))
    simulated = time.perf_counter()
    write_chunk(path, chunk_index, arrays, done)
    return ChunkOutcome(
        chunk_index,
        int(done.sum()),
        tuple(failures),
        simulated - start,
        time.perf_counter() - simulated,
        time.process_time() - start_cpu,
    )


@contextmanager
def _client(workers: int | None, scheduler_address: str | None) -> Iterator[Client]:
    if scheduler_address is not None:
        with Client(scheduler_address) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _check_count(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def generate(
    path: str | os.PathLike,
    space: ScenarioSpace,
    n_samples: int,
    master_seed: int = 0,
    *,
    workers: int | None = None,
    scheduler_address: str | None = None,
    resume: bool = False,
    repair: bool = False,
    overwrite: bool = False,
    samples_per_chunk: int = 4,
    with_pressure: bool = False,
    retries: int = 1,
    progress: bool = True,
    spatial_chunks: int = 1,
) -> GenerateReport:
    """Generate ``n_samples`` scenarios of ``space`` into the store at ``path``.

    Runs on a new ``LocalCluster`` of ``workers`` single-threaded processes (default: one per
    core), or on the running scheduler at ``scheduler_address`` (e.g. one started by
    dask-jobqueue; its workers must see ``path``). ``resume`` continues a store created with the
    same configuration (or creates it), skipping its done chunks and regenerating those whose
    chunk files are missing; ``repair`` (implies ``resume``) first verifies every done sample
    against its checksum and regenerates the damaged ones too, so the store ends equal to an
    uninterrupted run. ``overwrite`` replaces an existing store. Without either, an existing store
    is refused, unless no sample of it is done yet (e.g. a run that could not reach its
    scheduler): that one is reused. ``spatial_chunks`` splits the spatial variables along z into
    that many chunks (``data_gen.store``); like every setting, it must match an existing store's.
    Failed samples are listed in the report (``report.ok`` is False) while the rest of the store
    stays valid.

    The whole run holds the store's write lock (``data_gen.lock``): a second ``generate`` on the
    same store, ``overwrite`` included, fails with ``StoreLockedError`` naming the owner.
    """
    start = time.perf_counter()
    if workers is not None and scheduler_address is not None:
        raise ValueError("give either workers (a local cluster) or scheduler_address, not both")
    if workers is not None:
        _check_count("workers", workers, 1)
    _check_count("retries", retries, 0)
    resume = resume or repair
    if resume and overwrite:
        raise ValueError("resume and overwrite exclude each other: continue the store or replace it")
    config = StoreConfig(space, master_seed, n_samples, samples_per_chunk, with_pressure, spatial_chunks)
    path = Path(path)
    with store_lock(path):
        created = create_store(
            path,
            space,
            master_seed,
            n_samples,
            samples_per_chunk,
            with_pressure,
            overwrite=overwrite,
            spatial_chunks=spatial_chunks,
        )
        n_done = int(ledger(path).sum())
        if not created and not resume and n_done:
            raise FileExistsError(
                f"{path} already holds this ensemble ({n_done} of {n_samples} samples "
                "done); resume it (--resume) or start again (--overwrite)"
            )
        repaired = () if created else verify_store(path, full=repair).damaged
        if repaired:  # the ledger stops claiming them before they are regenerated
            reset_ledger(path, [d.index for d in repaired])
        pending = pending_chunks(path)
        outcomes: list[ChunkOutcome] = []
        if pending:
            outcomes = _run_chunks(path, config, pending, workers, scheduler_address, retries, progress)
        return _report(path, config, outcomes, repaired, start)


def _report(
    path: Path,
    config: StoreConfig,
    outcomes: list[ChunkOutcome],
    repaired: tuple[DamagedSample, ...],
    start: float,
) -> GenerateReport:
    return GenerateReport(
        path=str(path),
        n_samples=config.n_samples,
        n_done=int(ledger(path).sum()),
        n_generated=sum(o.n_done for o in outcomes),
        failures=tuple(sorted((f for o in outcomes for f in o.failures), key=lambda f: f.index)),
        wall_s=time.perf_counter() - start,
        simulate_s=sum(o.simulate_s for o in outcomes),
        write_s=sum(o.write_s for o in outcomes),
        cpu_s=sum(o.cpu_s for o in outcomes),
        repaired=repaired,
    )


def _run_chunks(
    path: Path,
    config: StoreConfig,
    chunks: list[int],
    workers: int | None,
    scheduler_address: str | None,
    retries: int,
    progress: bool,
) -> list[ChunkOutcome]:
    outcomes = []
    with _client(workers, scheduler_address) as client:
        print(f"dask dashboard: {client.dashboard_link}", flush=True)
        futures = {
            client.submit(run_chunk, str(path.absolute()), config, c, retries, retries=retries, pure=False): c
            for c in chunks
        }
        total = sum(s.stop - s.start for s in map(config.chunk_slice, chunks))
        n_failed = 0
        with tqdm(total=total, unit="sample", desc="generate", disable=not progress) as bar:
            for future in as_completed(futures):
                chunk = futures[future]
                try:
                    outcome = future.result()
                except Exception as err:  # a lost chunk is reported, not fatal
                    outcome = _lost_chunk(config, chunk, retries, err)
                outcomes.append(outcome)
                n_failed += len(outcome.failures)
                bar.set_postfix(failed=n_failed, refresh=False)
                bar.update(outcome.n_done + len(outcome.failures))
    return outcomes


def _lost_chunk(config: StoreConfig, chunk: int, retries: int, err: BaseException) -> ChunkOutcome:
    """Outcome of a chunk task that raised on every attempt: all its samples failed."""
    samples = config.chunk_slice(chunk)
    error = f"chunk {chunk} task failed: {type(err).__name__}: {err}"
    failures = tuple(
        SampleFailure(i, sample_seed(config.master_seed, i), retries + 1, error)
        for i in range(samples.start, samples.stop)
    )
    return ChunkOutcome(chunk, 0, failures, 0.0, 0.0, 0.0)
