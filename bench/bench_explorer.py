"""Latency of the scenario explorer: from a control change to the plot update ready for the browser.

    .venv/bin/python bench/bench_explorer.py                   # builds a 64 x 64 run first (~1 min)
    .venv/bin/python bench/bench_explorer.py --run-dir outputs/runs/full --repeats 30

Each sample sets one control (as a browser message would) and stops the clock once the Bokeh patch
message for the browser is built (Panel's ``diff`` of the held document); it then checks that the
predicted-saturation image holds the new prediction. Printed: median and 90th percentile per
control, also while "Simulate" runs the simulator in the background thread, and the simulator's
own run time. Without ``--run-dir`` a 64 x 64 run is built: a few simulated scenarios and one
training epoch of the default FNO (latency does not depend on how well the model is trained).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import holoviews as hv
import numpy as np
from bokeh.document import Document
from bokeh.models import GlyphRenderer, Plot
from bokeh.models import Image as BokehImage
from panel.io.model import diff

from ccs_fno.train import ModelConfig, TrainConfig, Trainer
from ccs_fno.widgets import ScenarioExplorer
from data_gen.pipeline import run_chunk
from data_gen.scenarios import default_space
from data_gen.store import StoreConfig, create_store


def build_run(base: Path, resolution: int, n_samples: int) -> Path:
    space = default_space("channel", resolution)
    config = StoreConfig(space, master_seed=0, n_samples=n_samples, samples_per_chunk=n_samples)
    store = base / "store.zarr"
    create_store(store, space, 0, n_samples, n_samples)
    run_chunk(str(store), config, 0)
    run_dir = base / "run"
    train = TrainConfig(epochs=1, batch_size=2, val_fraction=0.25, test_fraction=0.0, device="cpu")
    Trainer.start(store, run_dir, train, ModelConfig()).fit(progress=False)
    return run_dir


class Probe:
    """The explorer's layout rendered to Bokeh in a held document, as in a notebook."""

    def __init__(self, explorer: ScenarioExplorer) -> None:
        self.explorer = explorer
        self.plot = hv.renderer("bokeh").get_plot(explorer.views.layout)
        self.doc = Document()
        self.doc.add_root(self.plot.state)
        self.doc.hold()
        diff(self.doc)  # drop the initial events

    def predicted_image(self) -> np.ndarray:
        (figure,) = [
            f for f in self.plot.state.select({"type": Plot}) if f.title.text.startswith("surrogate: CO2")
        ]
        (renderer,) = [
            r for r in figure.renderers if isinstance(r, GlyphRenderer) and isinstance(r.glyph, BokehImage)
        ]
        return np.asarray(renderer.data_source.data["image"][0])

    def time(self, change: Callable[[], None]) -> float:
        """Seconds from ``change()`` to the browser patch message; checks the image it carries."""
        start = time.perf_counter()
        change()
        message = diff(self.doc)
        elapsed = time.perf_counter() - start
        if message is None:
            raise RuntimeError("the control change produced no plot update")
        e = self.explorer
        np.testing.assert_array_equal(self.predicted_image(), e.predicted[e.controls.time.value])
        return elapsed


def controls(explorer: ScenarioExplorer) -> dict[str, Callable[[int], None]]:
    """Setters of four controls; sample i sets a value different from sample i - 1's."""
    c = explorer.controls
    n_times = len(c.time.options)
    rates = np.linspace(c.rate.min, c.rate.max, 7)
    depth = c.injector_depth.value
    dz = explorer.space.grid.dz_m
    return {
        "time slider": lambda i: setattr(c.time, "value", (c.time.value + 7) % n_times),
        "injection rate": lambda i: setattr(c.rate, "value", float(rates[i % rates.size])),
        "injector depth": lambda i: setattr(c.injector_depth, "value", depth + dz * (2 * (i % 2) - 1)),
        "channel seed": lambda i: setattr(c.seed, "value", 1 + i),
    }


def report(name: str, seconds: list[float]) -> None:
    ms = 1e3 * np.asarray(seconds)
    print(
        f"  {name:<34s} median {np.median(ms):7.1f} ms   p90 {np.percentile(ms, 90):7.1f} ms   (n={ms.size})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", help="a `ccs-fno train` run (default: build a 64 x 64 one)")
    parser.add_argument("--resolution", type=int, default=64, help="grid of the built run")
    parser.add_argument("--repeats", type=int, default=20, help="samples per control")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run_dir) if args.run_dir else None
        if run_dir is None:
            print(f"building a {args.resolution} x {args.resolution} run in {tmp} ...", flush=True)
            run_dir = build_run(Path(tmp), args.resolution, n_samples=4)
        explorer = ScenarioExplorer.from_run(run_dir)
        probe = Probe(explorer)
        grid = explorer.space.grid
        print(f"explorer latency, control change -> Bokeh patch ready, {grid.nz} x {grid.nx} cells, CPU:")
        for name, change in controls(explorer).items():
            for i in range(3):  # warm-up
                probe.time(lambda i=i, change=change: change(i))
            report(
                name, [probe.time(lambda i=i, change=change: change(i)) for i in range(3, 3 + args.repeats)]
            )

        move_time = controls(explorer)["time slider"]
        start = time.perf_counter()
        future = explorer.simulate()
        during = []
        while not future.done() and len(during) < args.repeats:
            during.append(probe.time(lambda: move_time(0)))
        future.result()
        simulated_s = time.perf_counter() - start
        report("time slider while simulating", during)
        n_times = len(explorer.surrogate.times_days)
        print(f"  simulator (background thread)      {simulated_s:7.2f} s for {n_times} report times")
        explorer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
