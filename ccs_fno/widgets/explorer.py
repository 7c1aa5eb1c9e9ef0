"""The scenario explorer: ipywidgets controls, HoloViews views, the surrogate and the simulator.

A control change is answered by the surrogate in the kernel thread (tens of ms at 64 x 64 on a
CPU). "Simulate" runs the real simulator (``data_gen.physics.simulate``) for the same scenario in
a background thread, so the kernel stays responsive; its progress bar follows the simulated time
and, when it finishes, the views show simulated vs predicted saturation and their difference. A
simulation whose scenario has changed meanwhile is not shown.
"""

from __future__ import annotations

import html
import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as widgets
import numpy as np

from ccs_fno.widgets.controls import ExplorerControls, depth_to_row
from ccs_fno.widgets.plume import relative_error
from ccs_fno.widgets.views import ExplorerFrame, ExplorerViews
from data_gen.geology import (
    ChannelParams,
    GeologyParams,
    channel_boundaries,
    default_params,
    permeability,
)
from data_gen.grid import Grid
from data_gen.physics import simulate
from data_gen.scenarios import ScenarioSpace

if TYPE_CHECKING:
    from ccs_fno.surrogate import Surrogate


@dataclass(frozen=True)
class ExplorerScenario:
    """One scenario of the explorer: geology, injection rate (m^3/day) and well cells (z, x)."""

    geology: str
    geology_params: GeologyParams
    seed: int
    rate_m3_per_day: float
    injector_zx: tuple[int, int]
    producer_zx: tuple[int, int]


def _describe(grid: Grid) -> str:
    return f"{grid.nz} x {grid.nx} cells of {grid.dz_m:g} m x {grid.dx_m:g} m ({grid.dy_m:g} m thick)"


def check_compatible(surrogate: Surrogate, space: ScenarioSpace) -> None:
    """Raise ValueError unless the surrogate was trained on the grid and report times of ``space``."""
    if surrogate.grid != space.grid:
        raise ValueError(
            f"the run's grid ({_describe(surrogate.grid)}) does not match the store's "
            f"({_describe(space.grid)}); give the store the run was trained on"
        )
    times = np.asarray(space.simulation.report_times_days)
    if times.shape != surrogate.times_days.shape or not np.allclose(times, surrogate.times_days):
        raise ValueError(
            f"the run predicts {surrogate.times_days.size} report times "
            f"({surrogate.times_days[0]:g} ... {surrogate.times_days[-1]:g} d) but the store reports "
            f"{times.size} ({times[0]:g} ... {times[-1]:g} d); give the store the run was trained on"
        )


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run torch on ``n`` threads: one small field gains little from more, and on a small
    machine extra threads fight the simulator thread and the kernel (4-10x slower measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def channel_centre_m(grid: Grid, params: ChannelParams, seed: int, column: int) -> float:
    """Depth (m) of the channel's centre line at ``column``."""
    top, bottom = channel_boundaries(grid, params, seed)
    return float(0.5 * (top[column] + bottom[column]))


class ScenarioExplorer:
    """Explore CO2-injection scenarios with a trained surrogate; check them with the simulator.

    ``surrogate`` must be trained on the grid and report times of ``space`` (the training store's
    scenario space, which also gives the physics of the simulator, porosity and well columns).
    Display it in a notebook (it is its own ``_ipython_display_``) or embed ``widget``. Built
    most easily with ``ScenarioExplorer.from_run(run_dir)``.
    """

    def __init__(self, surrogate: Surrogate, space: ScenarioSpace) -> None:
        check_compatible(surrogate, space)
        self.surrogate, self.space = surrogate, space
        grid = space.grid
        params = {kind: default_params(kind, grid) for kind in ("channel", "gaussian")}
        params[space.geology] = space.geology_params
        low, high = space.rate_m3_per_day_range
        middle = float(grid.z_m[grid.nz // 2])
        self.controls = ExplorerControls(
            grid, surrogate.times_days, space.geology, params, 0.5 * (low + high), (low, high), middle, middle
        )
        # The simulator thread, the kernel's comm threads and Panel's browser messages all update
        # the views: one at a time.
        self._lock = threading.RLock()
        self._holding = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ccs-fno-simulator")
        self.simulation: Future | None = None
        self._rock_cache: tuple[tuple, np.ndarray] | None = None
        self._simulated: tuple[ExplorerScenario, np.ndarray] | None = None
        self._plots: widgets.Output | None = None
        self._place_wells_in_channel()
        self.scenario, self.permeability_md, self.predicted = self._predict()
        self.views = ExplorerViews(grid, surrogate.times_days, surrogate.max_saturation, self._frame())
        for control in self.controls.scenario_widgets():
            control.observe(self._on_scenario_change, "value")
        self.controls.time.observe(self._on_time_change, "value")
        self.controls.simulate.on_click(lambda _: self.simulate())
        self._note = f"surrogate trained on {space.geology} geology, {_describe(grid)}"
        self._set_status(self._note)

    @classmethod
    def from_run(
        cls, run_dir: str | os.PathLike | None, store: str | os.PathLike | None = None
    ) -> ScenarioExplorer:
        """The explorer of the surrogate in ``run_dir`` (from ``ccs-fno train``).

        ``store`` defaults to the run's training store (named in its ``config.json``).
        """
        from ccs_fno.run_dir import CONFIG_FILE, MODEL_FILE
        from ccs_fno.surrogate import load_surrogate
        from data_gen.store import read_config

        if run_dir is None or str(run_dir).strip() == "":
            raise ValueError(
                "no run directory given: train a surrogate with `ccs-fno train STORE --run-dir DIR` "
                "(or notebooks/02_train_surrogate.ipynb) and pass run_dir=DIR"
            )
        run_dir = Path(run_dir)
        if not (run_dir / MODEL_FILE).is_file():
            raise FileNotFoundError(
                f"{run_dir} holds no trained surrogate ({MODEL_FILE}): give the --run-dir of a "
                "`ccs-fno train` run that finished at least one epoch"
            )
        if store is None:
            config = run_dir / CONFIG_FILE
            if not config.is_file():
                raise FileNotFoundError(f"{config} is missing: pass store=PATH (the training store)")
            store = json.loads(config.read_text())["store"]
        if not Path(store).exists():
            raise FileNotFoundError(
                f"the store {store} is not there: pass store=PATH (the store the run was trained on)"
            )
        return cls(load_surrogate(run_dir), read_config(store).space)

    # -- display -------------------------------------------------------------------------------

    @property
    def widget(self) -> widgets.VBox:
        """The whole app: controls above the views."""
        if self._plots is None:
            import panel as pn
            from IPython.display import display

            pane = pn.panel(self.views.layout)  # Panel keeps its CSS inline (offline)
            if hasattr(pane, "_on_msg"):  # Panel's handler of browser messages (private API)
                pane._on_msg = self._serialised(pane._on_msg)
            self._plots = widgets.Output()
            with self._plots:
                display(pane)
        return widgets.VBox([self.controls.box, self._plots])

    def _serialised(self, handle_browser_message):
        """Panel applies the browser's messages to the Bokeh document in a thread of the kernel's
        comms, holding and unholding the document: run concurrently with an update on another
        thread, that drops the update's events (plots were seen stuck on old data). Messages and
        updates are serialised by the explorer's lock."""

        def handle(*args):
            with self._lock:
                return handle_browser_message(*args)

        return handle

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    # -- state ---------------------------------------------------------------------------------

    def current_scenario(self) -> ExplorerScenario:
        """The scenario the controls describe (ValueError for an impossible geology)."""
        c, space = self.controls, self.space
        injector_row, producer_row = c.well_rows()
        return ExplorerScenario(
            geology=c.geology.value,
            geology_params=c.geology_params(),
            seed=int(c.seed.value),
            rate_m3_per_day=float(c.rate.value),
            injector_zx=(injector_row, space.injector_column),
            producer_zx=(producer_row, space.producer_column),
        )

    def _rock(self, scenario: ExplorerScenario) -> np.ndarray:
        key = (scenario.geology, scenario.geology_params, scenario.seed)
        if self._rock_cache is None or self._rock_cache[0] != key:
            k = permeability(scenario.geology, self.space.grid, scenario.geology_params, scenario.seed)
            self._rock_cache = (key, k)
        return self._rock_cache[1]

    def _predict(self) -> tuple[ExplorerScenario, np.ndarray, np.ndarray]:
        scenario = self.current_scenario()
        k = self._rock(scenario)
        with _torch_threads(1):
            predicted = self.surrogate.predict(
                k,
                rate_m3_per_day=scenario.rate_m3_per_day,
                injector_zx=scenario.injector_zx,
                producer_zx=scenario.producer_zx,
                porosity=self.space.porosity,
            ).values
        return scenario, k, predicted

    def _frame(self) -> ExplorerFrame:
        simulated, note = None, "press Simulate"
        if self._simulated is not None:
            if self._simulated[0] == self.scenario:
                simulated = self._simulated[1]
            else:
                note = "scenario changed, press Simulate"
        return ExplorerFrame(
            self.permeability_md,
            self.scenario.injector_zx,
            self.scenario.producer_zx,
            self.predicted,
            int(self.controls.time.value),
            simulated,
            note,
        )

    @contextmanager
    def _hold(self) -> Iterator[None]:
        """Set several controls without reacting to each."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def _place_wells_in_channel(self) -> None:
        """Complete both wells at the channel's centre line, as the training data has them."""
        c = self.controls
        if c.geology.value != "channel":
            return
        params, seed = c.geology_params(), int(c.seed.value)
        grid = self.space.grid
        with self._hold():
            for slider, column in (
                (c.injector_depth, self.space.injector_column),
                (c.producer_depth, self.space.producer_column),
            ):
                row = depth_to_row(grid, channel_centre_m(grid, params, seed, column))
                slider.value = float(grid.z_m[row])

    # -- reactions -----------------------------------------------------------------------------

    def _on_scenario_change(self, change: dict) -> None:
        c = self.controls
        with self._lock:  # widget messages may arrive on several kernel threads
            if self._holding:
                return
            try:
                geology_widgets = [c.geology, c.seed, *c.params[c.geology.value].values()]
                if change["owner"] in geology_widgets:
                    self._place_wells_in_channel()
                self.scenario, self.permeability_md, self.predicted = self._predict()
            except (ValueError, TypeError) as err:
                self._set_status(f"cannot build this scenario: {err}", error=True)
                return
            self.views.show(self._frame())
            self._set_status(self._note)

    def _on_time_change(self, change: dict) -> None:
        with self._lock:
            self.views.show(self._frame())
            self._show_errors()

    @property
    def status_text(self) -> str:
        """The status line as plain text (what the last action did, or why it failed)."""
        return self._status_text

    def _set_status(self, text: str, error: bool = False) -> None:
        self._status_text = text
        colour = "#b00020" if error else "inherit"
        self.controls.status.value = f'<span style="color: {colour}">{html.escape(text)}</span>'

    def _show_errors(self) -> None:
        frame = self._frame()
        if frame.simulated is None:
            return
        now = frame.time_index
        t = self.surrogate.times_days[now]
        overall = relative_error(frame.predicted, frame.simulated)
        at_t = relative_error(frame.predicted[now], frame.simulated[now])
        text = f"surrogate vs simulator: relative L2 error {overall:.1%} over all times"
        self._set_status(text + (f", {at_t:.1%} at {t:g} d" if np.isfinite(at_t) else ""))

    # -- simulator -----------------------------------------------------------------------------

    def simulate(self) -> Future:
        """Simulate the current scenario in a background thread; return its future.

        The future's result is the simulated saturation ``(time, z, x)``; the views show it
        before the future completes. While one simulation runs, its future is returned.
        """
        with self._lock:
            if self.simulation is not None and not self.simulation.done():
                return self.simulation
            scenario = self.scenario
            config = replace(
                self.space.simulation,
                rate_m3_per_day=scenario.rate_m3_per_day,
                injector_zx=scenario.injector_zx,
                producer_zx=scenario.producer_zx,
            )
            c = self.controls
            c.simulate.disabled = True
            c.progress.value, c.progress.bar_style = 0.0, "info"
            self._set_status("simulating in the background; the controls stay live")
            self.simulation = self._executor.submit(
                self._run_simulator, scenario, self.permeability_md, config
            )
            return self.simulation

    def _run_simulator(self, scenario: ExplorerScenario, permeability_md: np.ndarray, config) -> np.ndarray:
        c = self.controls
        end_days = config.report_times_days[-1]
        start = time.perf_counter()
        try:
            result = simulate(
                permeability_md,
                self.space.porosity,
                config,
                progress=lambda t: setattr(c.progress, "value", t / end_days if end_days else 1.0),
            )  # called as the data generator calls it: the same numbers as in the store
        except Exception as err:
            with self._lock:
                c.simulate.disabled, c.progress.bar_style = False, "danger"
                self._set_status(f"the simulator failed: {type(err).__name__}: {err}", error=True)
            raise
        with self._lock:
            c.simulate.disabled, c.progress.bar_style = False, "success"
            self._simulated = (scenario, result.saturation)
            if scenario != self.scenario:
                self._set_status("the scenario changed while simulating: press Simulate again")
            else:
                self.views.show(self._frame())
                self._show_errors()
                self._set_status(f"{self._status_text} (simulated in {time.perf_counter() - start:.1f} s)")
        return result.saturation

    def close(self) -> None:
        """Stop accepting simulations (a running one finishes in its thread)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
