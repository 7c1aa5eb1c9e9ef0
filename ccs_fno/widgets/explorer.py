"""The scenario explorer: ipywidgets controls, Bokeh panels, the surrogate and the simulator.

A control change is answered by the surrogate in the kernel thread (tens of ms at 64 x 64 on a
CPU) and shown by updating the panels' Bokeh data sources (``panels.py``). Before anyone runs
the simulator, a banner says whether the scenario lies inside the surrogate's training
distribution (``Surrogate.check_domain``) and, when it does not, why. "Simulate" runs the real
simulator (``data_gen.physics.simulate``) for the same scenario in a background thread, so the
kernel stays responsive; its progress bar follows the simulated time and, when it finishes, the
panels show simulated vs predicted saturation, their difference and the simulator's curves. A
simulation whose scenario has changed meanwhile is not shown.

With a conformal calibration (``ccs_fno.uq.Calibration``, found next to the surrogate by
``from_run``) that fits the surrogate's grid and report times, the panels show its 90 % band
(plume area and extent, and the per-cell band at the shown time) and the status line says how
many held-out simulations it comes from; outside the training distribution they say the band
does not apply (it is calibrated in distribution only).

The scenario is a ``data_gen.scenarios.Scenario`` of a one-scenario space (the training space
with the geology kind and parameters the controls set). Wells stay where the user put them when
the geology changes; "wells into channel" moves them to the channel and says so.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import ipywidgets as widgets
import numpy as np

from ccs_fno.co2_mass import format_mass_t, injected_mass_t, mass_rate_t_per_day, mt_per_year
from ccs_fno.plume import relative_error
from ccs_fno.widgets.background import compute_threads
from ccs_fno.widgets.controls import ExplorerControls, depth_to_row
from ccs_fno.widgets.explorer_views import BAND, BAND_DOES_NOT_APPLY, BAND_LEVEL, ExplorerFrame, ExplorerViews
from ccs_fno.widgets.panels import Banner
from data_gen.geology import ChannelParams, channel_boundaries, default_params, permeability
from data_gen.grid import Grid
from data_gen.physics import simulate
from data_gen.scenarios import Scenario, ScenarioSpace

if TYPE_CHECKING:
    from ccs_fno.surrogate import Surrogate
    from ccs_fno.uq import Calibration


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


def find_calibration(run_dir: str | os.PathLike) -> Calibration | None:
    """The conformal calibration saved in ``run_dir`` (its calibration.nc), or None when there is none."""
    from ccs_fno.uq import Calibration

    try:
        return Calibration.load(run_dir)
    except FileNotFoundError:
        return None


def channel_centre_m(grid: Grid, params: ChannelParams, seed: int, column: int) -> float:
    """Depth (m) of the channel's centre line at ``column``."""
    top, bottom = channel_boundaries(grid, params, seed)
    return float(0.5 * (top[column] + bottom[column]))


OFFLINE_TEXT = (
    "[scenario explorer: interactive when this notebook runs; the picture below shows it as it was saved]"
)


class _Saved:
    """Display ``widget``, with ``text`` instead of its ``VBox(children=...)`` repr as the plain-text
    form that a notebook opened without its kernel shows (IPython's ``_repr_mimebundle_`` protocol)."""

    def __init__(self, widget: widgets.Widget, text: str) -> None:
        self.widget, self.text = widget, text

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.text
        return bundle


class ScenarioExplorer:
    """Explore CO2-injection scenarios with a trained surrogate; check them with the simulator.

    ``surrogate`` must be trained on the grid and report times of ``space`` (the training store's
    scenario space, which also gives the physics of the simulator, porosity, CO2 density and
    well columns). Display it in a notebook (it is its own ``_ipython_display_``) or embed
    ``widget``. Built most easily with ``ScenarioExplorer.from_run(run_dir)`` or
    ``ScenarioExplorer.from_surrogate(load_surrogate("default"))``.

    ``calibration``: the surrogate's conformal calibration; its 90 % band is shown when it fits
    the surrogate's grid and report times and holds that level (``band_note`` says why not).

    The time slider above the panels swaps their frames in the browser once the controls have
    rested ``frames_after_s`` seconds (then every report time's images are sent; before, a time
    change goes through the kernel); ``None``: never (each time change through the kernel).
    """

    frames_after_s: float | None = 0.3

    def __init__(
        self, surrogate: Surrogate, space: ScenarioSpace, calibration: Calibration | None = None
    ) -> None:
        check_compatible(surrogate, space)
        self.surrogate, self.space = surrogate, space
        self.calibration, self.band_note = self._usable(calibration)
        self._in_domain = True
        grid = space.grid
        params = {kind: default_params(kind, grid) for kind in ("channel", "gaussian")}
        params[space.geology] = space.geology_params
        low, high = space.rate_m3_per_day_range
        middle = float(grid.z_m[grid.nz // 2])
        self.controls = ExplorerControls(
            grid, surrogate.times_days, space.geology, params, 0.5 * (low + high), (low, high), middle, middle
        )
        self.co2_density_kg_m3 = float(space.simulation.fluids.co2_density_kg_m3)
        self.status = Banner(height_px=46)  # two lines: the calibration note and why no band
        self.trust = Banner(height_px=58)
        # The simulator thread and the kernel's comm handlers both update the panels: one at a time.
        self._lock = threading.RLock()
        self._holding = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ccs-fno-simulator")
        self.simulation: Future | None = None
        self._running = False  # a simulation is under way (its result not shown yet)
        self._rock_cache: tuple[tuple, np.ndarray] | None = None
        self._spaces: dict[tuple, ScenarioSpace] = {}
        self._simulated: tuple[Scenario, np.ndarray] | None = None
        self._widget: widgets.VBox | None = None
        # milliseconds of the last update's parts: geology, surrogate, panels, trust, total
        self.timings_ms: dict[str, float] = {}
        self._frames_timer: threading.Timer | None = None
        self._frames_version = 0
        self.frames_ms: float | None = None  # the kernel's time for the last load_frames
        self.wells_into_channel(announce=False)
        self.scenario, self.permeability_md, self.predicted = self._predict()
        self.views = ExplorerViews(
            grid,
            surrogate.times_days,
            surrogate.max_saturation,
            space.porosity,
            self.co2_density_kg_m3,
            self.calibration,
            time=self.controls.time,
        )
        report = self._check_domain()
        self.views.show(self._frame())
        for control in self.controls.scenario_widgets():
            control.observe(self._on_scenario_change, "value")
        self.controls.time.observe(self._on_time_change)
        self.controls.simulate.on_click(lambda _: self.simulate())
        self.controls.wells_into_channel.on_click(lambda _: self.wells_into_channel())
        self._trained = f"surrogate trained on {space.geology} geology, {_describe(grid)}"
        self._set_status(self._note)
        self._show_units()
        self._show_trust(report)
        # every frame now, with the panels' first state: once the app is displayed, messages sent
        # before the browser has drawn it are lost (jupyter_bokeh applies them to drawn views)
        self.views.load_frames()

    @classmethod
    def from_run(
        cls, run_dir: str | os.PathLike | None, store: str | os.PathLike | None = None
    ) -> ScenarioExplorer:
        """The explorer of the surrogate in ``run_dir`` (from ``ccs-fno train``; ``"default"``:
        the surrogate shipped with the package).

        ``store`` defaults to the run's training store (named in its ``config.json``).
        """
        from ccs_fno.run_dir import CONFIG_FILE, MODEL_FILE
        from ccs_fno.surrogate import load_surrogate
        from data_gen.store import read_config

        if str(run_dir) == "default" and store is None:
            from ccs_fno.surrogate import DEFAULT_SURROGATE

            return cls.from_surrogate(load_surrogate("default"), find_calibration(DEFAULT_SURROGATE))

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
        return cls(load_surrogate(run_dir), read_config(store).space, find_calibration(run_dir))

    @classmethod
    def from_surrogate(cls, surrogate: Surrogate, calibration: Calibration | None = None) -> ScenarioExplorer:
        """The explorer of a surrogate that records its training distribution (e.g.
        ``load_surrogate("default")``): the scenario space comes from ``surrogate.domain``."""
        if surrogate.domain is None:
            raise ValueError(
                "this surrogate records no training distribution, so the explorer does not know its "
                "scenario space: use ScenarioExplorer.from_run(run_dir, store) with its training store"
            )
        return cls(surrogate, surrogate.domain.space, calibration)

    def _usable(self, calibration: Calibration | None) -> tuple[Calibration | None, str]:
        """``calibration`` when its band can be shown, and the status line's words about it."""
        if calibration is None:
            return None, ""
        if not calibration.fits(self.surrogate.grid, self.surrogate.times_days):
            return None, "its calibration is of another grid or report times: no band shown"
        if not np.isclose(calibration.levels, BAND_LEVEL).any():
            return None, f"its calibration holds no {BAND} (levels {calibration.levels.tolist()})"
        n = calibration.n_calibration
        return calibration, f"{BAND_LEVEL:.0%} conformal band from {n} held-out simulations".replace(
            "%", " %"
        )

    @property
    def _note(self) -> str:
        """The status line after a scenario change: the surrogate, and its band."""
        parts = [self._trained] + ([self.band_note] if self.band_note else [])
        if self.calibration is not None and not self._in_domain:
            parts.append(BAND_DOES_NOT_APPLY)
        return "; ".join(parts)

    # -- display -------------------------------------------------------------------------------

    @property
    def widget(self) -> widgets.VBox:
        """The whole app: controls, the status and trust banners, the panels."""
        if self._widget is None:
            self._widget = widgets.VBox(
                [self.controls.box, self.status.widget, self.trust.widget, self.views.widget],
                layout=widgets.Layout(width="100%"),
            )
        return self._widget

    def static_figure(self):
        """The panels as they are now, as a matplotlib figure (for a notebook read offline)."""
        return self.views.static_figure()

    def _ipython_display_(self) -> None:
        from ccs_fno.widgets.static import show_figure

        show_figure(_Saved(self.widget, OFFLINE_TEXT), static=self.static_figure())

    # -- state ---------------------------------------------------------------------------------

    def _space_of(self, kind: str, params) -> ScenarioSpace:
        """The one-scenario space of geology ``kind`` with ``params`` (nothing drawn)."""
        key = (kind, params)
        if key not in self._spaces:
            self._spaces[key] = replace(
                self.space, geology=kind, geology_params=params, geology_ranges={}, well_depth_range_m=None
            )
        return self._spaces[key]

    def current_scenario(self) -> Scenario:
        """The scenario the controls describe (ValueError for an impossible geology)."""
        c, space = self.controls, self.space
        injector_row, producer_row = c.well_rows()
        return Scenario(
            space=self._space_of(c.geology.value, c.geology_params()),
            index=0,
            seed=int(c.seed.value),
            geology_params=c.geology_params(),
            rate_m3_per_day=float(c.rate.value),
            injector_zx=(injector_row, space.injector_column),
            producer_zx=(producer_row, space.producer_column),
        )

    def _rock(self, scenario: Scenario) -> np.ndarray:
        """The scenario's permeability (mD); a gaussian field of a seed and correlation structure
        seen before is rescaled from its cached unit field (no GSTools run)."""
        kind, params, seed = scenario.space.geology, scenario.geology_params, scenario.seed
        key = (kind, params, seed)
        if self._rock_cache is None or self._rock_cache[0] != key:
            k = permeability(kind, scenario.space.grid, params, seed, cached=True)
            self._rock_cache = (key, k)
        return self._rock_cache[1]

    def _predict(self) -> tuple[Scenario, np.ndarray, np.ndarray]:
        """The scenario the controls describe, its permeability (mD) and the surrogate's
        saturation ``(time, z, x)``, on one thread of torch and BLAS (the browser shares the CPU)."""
        scenario = self.current_scenario()
        with compute_threads(1):
            start = time.perf_counter()
            k = self._rock(scenario)
            self.timings_ms["geology"] = 1e3 * (time.perf_counter() - start)
            start = time.perf_counter()
            predicted = self.surrogate.predict(
                k,
                rate_m3_per_day=scenario.rate_m3_per_day,
                injector_zx=scenario.injector_zx,
                producer_zx=scenario.producer_zx,
                porosity=self.space.porosity,
                check_domain=False,  # the trust banner says it, once, in words
            ).values
        self.timings_ms["surrogate"] = 1e3 * (time.perf_counter() - start)
        return scenario, k, predicted

    def _frame(self) -> ExplorerFrame:
        simulated, note = None, "no simulation yet: press Simulate"
        if self._running:
            note = "simulating in the background ..."
        elif self._simulated is not None:
            if self._simulated[0] == self.scenario:
                simulated = self._simulated[1]
            else:
                note = "scenario changed: press Simulate"
        return ExplorerFrame(
            self.permeability_md,
            self.scenario.injector_zx,
            self.scenario.producer_zx,
            self.scenario.rate_m3_per_day,
            self.predicted,
            int(self.controls.time.value),
            simulated,
            note,
            band_applies=self._in_domain,
        )

    @contextmanager
    def _hold(self) -> Iterator[None]:
        """Set several controls without reacting to each."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def wells_into_channel(self, announce: bool = True) -> None:
        """Complete both wells at the channel's centre line in their columns, as the training data
        has them; the status line says where they moved (channel geology only)."""
        c = self.controls
        if c.geology.value != "channel":
            if announce:
                self._set_status("wells stay where they are: the geology is not a channel", error=True)
            return
        params, seed = c.geology_params(), int(c.seed.value)
        grid = self.space.grid
        moves = []
        with self._lock:
            with self._hold():
                for name, slider, column in (
                    ("injector", c.injector_depth, self.space.injector_column),
                    ("producer", c.producer_depth, self.space.producer_column),
                ):
                    row = depth_to_row(grid, channel_centre_m(grid, params, seed, column))
                    before, slider.value = slider.value, float(grid.z_m[row])
                    moves.append(f"{name} {before:.0f} → {slider.value:.0f} m")
            if announce:
                self._update_scenario()
                self._set_status("wells completed at the channel centre: " + ", ".join(moves))

    # -- reactions -----------------------------------------------------------------------------

    def _on_scenario_change(self, change: dict) -> None:
        with self._lock:  # widget messages may arrive on several kernel threads
            if self._holding:
                return
            if self._update_scenario():
                self._set_status(self._note)

    def _update_scenario(self) -> bool:
        start = time.perf_counter()
        self.timings_ms = {}
        try:
            self.scenario, self.permeability_md, self.predicted = self._predict()
        except (ValueError, TypeError) as err:
            self._set_status(f"cannot build this scenario: {err}", error=True)
            return False
        mark = time.perf_counter()
        report = self._check_domain()
        # the banners first: the browser restyles them while the panels' changes are on their way
        self._show_units()
        self._show_trust(report)
        self.timings_ms["trust"] = 1e3 * (time.perf_counter() - mark)
        self._show_timed("panels", self._frame())
        self.timings_ms["total"] = 1e3 * (time.perf_counter() - start)
        self._frames_later()
        return True

    def _frames_later(self) -> None:
        """Send every report time's images (``ExplorerViews.load_frames``: the time slider then
        swaps them in the browser) once the controls have rested ``frames_after_s``; a change
        before then starts the wait again. The frames cost the browser ~0.1 s to take in: sent
        with every change they would slow each one down."""
        with self._lock:
            if self._frames_timer is not None:
                self._frames_timer.cancel()
            self._frames_version += 1
            if self.frames_after_s is None:
                return
            self._frames_timer = threading.Timer(
                self.frames_after_s, self._load_frames, args=(self._frames_version,)
            )
            self._frames_timer.daemon = True
            self._frames_timer.start()

    def _load_frames(self, version: int) -> None:
        with self._lock:
            if version != self._frames_version:  # a change came after: its own wait runs
                return
            start = time.perf_counter()
            self.views.load_frames()
            self.frames_ms = 1e3 * (time.perf_counter() - start)

    def _show_timed(self, name: str, frame: ExplorerFrame) -> None:
        start = time.perf_counter()
        self.views.show(frame)
        self.timings_ms[name] = 1e3 * (time.perf_counter() - start)

    def _on_time_change(self, change: dict) -> None:
        with self._lock:
            start = time.perf_counter()
            self.timings_ms = {}
            self._show_timed("panels", self._frame())  # the prediction holds every report time
            self._show_errors()
            self.timings_ms["total"] = 1e3 * (time.perf_counter() - start)

    @property
    def status_text(self) -> str:
        """The status line as plain text (what the last action did, or why it failed)."""
        return self.status.text

    @property
    def trust_text(self) -> str:
        """The trust banner as plain text: inside the training distribution, or why not."""
        return self.trust.text

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status.show("error" if error else "info", text)

    def _show_units(self) -> None:
        """The rate as mass (t/day, Mt/year) and the CO2 injected by the end, under the rate slider."""
        rate, density = self.scenario.rate_m3_per_day, self.co2_density_kg_m3
        t_day = mass_rate_t_per_day(rate, density)
        total = injected_mass_t(self.surrogate.times_days[-1:], rate, density)[0]
        self.controls.rate_mass.value = (
            f"<span title='reservoir volume rate x CO2 density'>= {t_day:.1f} t/day = "
            f"{mt_per_year(t_day):.4f} Mt/yr CO2<br>at {density:g} kg/m³: {format_mass_t(total)} in "
            f"{self.surrogate.times_days[-1]:g} d</span>"
        )

    def domain_report(self):
        """``Surrogate.check_domain`` of the current scenario (None: the surrogate records none)."""
        if self.surrogate.domain is None:
            return None
        s = self.scenario
        return self.surrogate.check_domain(
            self.permeability_md,
            rate_m3_per_day=s.rate_m3_per_day,
            injector_zx=s.injector_zx,
            producer_zx=s.producer_zx,
            porosity=self.space.porosity,
        )

    def _check_domain(self):
        """The domain report of the current scenario; the band applies only inside."""
        report = self.domain_report()
        self._in_domain = report is None or report.ok
        return report

    def _show_trust(self, report=None) -> None:
        report = self.domain_report() if report is None else report
        if report is None:
            self.trust.show(
                "warning",
                "this surrogate records no training distribution: the explorer cannot tell whether a "
                "scenario lies inside it; check with Simulate",
            )
        elif report.ok:
            self.trust.show(
                "info", "inside the surrogate's training distribution (geology, rate, wells, grid)"
            )
        else:
            self.trust.show(
                "warning",
                list(report.reasons),
                heading="Outside the surrogate's training distribution: its answer is not trustworthy "
                "here (press Simulate to check).",
            )

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

        The future's result is the simulated saturation ``(time, z, x)``; the panels show it
        before the future completes. While one simulation runs, its future is returned.
        """
        with self._lock:
            if self.simulation is not None and not self.simulation.done():
                return self.simulation
            scenario = self.scenario
            c = self.controls
            c.simulate.disabled = True
            c.progress.value, c.progress.bar_style = 0.0, "info"
            self._set_status("simulating in the background; the controls stay live")
            self._running = True
            self.simulation = self._executor.submit(self._run_simulator, scenario, self.permeability_md)
            self.views.show(self._frame())
            return self.simulation

    def _run_simulator(self, scenario: Scenario, permeability_md: np.ndarray) -> np.ndarray:
        c = self.controls
        config = scenario.config
        end_days = config.report_times_days[-1]
        start = time.perf_counter()
        try:
            result = simulate(
                permeability_md,
                scenario.porosity(),
                config,
                progress=lambda t: setattr(c.progress, "value", t / end_days if end_days else 1.0),
            )  # called as the data generator calls it: the same numbers as in the store
        except Exception as err:
            with self._lock:
                c.simulate.disabled, c.progress.bar_style = False, "danger"
                self._simulated, self._running = None, False
                self.views.show(self._frame())
                self._set_status(f"the simulator failed: {type(err).__name__}: {err}", error=True)
            raise
        with self._lock:
            c.simulate.disabled, c.progress.bar_style = False, "success"
            self._simulated, self._running = (scenario, result.saturation), False
            self.views.show(self._frame())
            self._frames_later()
            if scenario != self.scenario:
                self._set_status("the scenario changed while simulating: press Simulate again")
            else:
                self._show_errors()
                self._set_status(f"{self.status_text} (simulated in {time.perf_counter() - start:.1f} s)")
        return result.saturation

    def close(self) -> None:
        """Stop accepting simulations (a running one finishes in its thread) and sending frames."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            self.frames_after_s = None
            self._frames_later()  # cancels a wait under way
