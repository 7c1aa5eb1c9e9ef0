"""The inversion app: monitoring data -> permeability through the surrogate, checked by the simulator.

Controls: the truth (a scenario drawn with ``data_gen.scenarios`` from a seed, a sample of a
store, or an observations file with no truth); monitoring wells placed by clicking on the truth
map (a click near a well removes it); well log times, snapshot times and the noise level; the
parameterisation and iterations. "Run" works in a background thread: it simulates the truth with
the real simulator (cached), synthesises the observations and inverts them
(``ccs_fno.inversion.invert``) while the misfit curve and the progress bar follow each
iteration; "Cancel" stops it after the current iteration and keeps the best model so far.
"Verify with simulator" re-simulates the inverted permeability in the background and shows the
simulator-confirmed plume next to the truth and the surrogate's forecast. "Export" writes the
result (NetCDF ``.nc`` or Zarr ``.zarr``). A failed or cancelled run leaves the app usable.

Everything shown is computed by ``ccs_fno.inversion``; this module only displays it through the
widget foundations (``panels.py``: Bokeh sources updated in place).
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import replace
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import xarray as xr
from bokeh.events import Tap

from ccs_fno.inversion import (
    InversionConfig,
    MonitoringWells,
    ObservationDesign,
    Snapshots,
    invert,
    load_observations,
    load_prior_for,
    parameterisation_names,
    plume_rel_l2,
    save_result,
    simulate_truth,
    synthesize_observations,
    truth_from_store,
    verify,
)
from ccs_fno.inversion.observations import observation_grid
from ccs_fno.widgets.background import BackgroundRuns, compute_threads
from ccs_fno.widgets.panels import (
    DASHED,
    SOLID,
    Banner,
    ColourScale,
    CurvePanel,
    ImagePanel,
    LineStyle,
    bokeh_view,
    panel_grid,
    permeability_scale,
    saturation_scale,
)
from ccs_fno.widgets.static import static_figure
from data_gen.scenarios import sample_scenario

SOURCES = ("scenario", "store sample", "observations file")
MONITOR_COLOUR = "#111111"
_WIDE = {"description_width": "initial"}
OBSERVED = LineStyle("#444444")


def parse_days(text: str, name: str) -> tuple[float, ...]:
    """Comma-separated days (``"200, 400"``) as floats; "" is none; a ValueError names the text."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        return tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"{name} must be comma-separated days such as '200, 400', got {text!r}") from None


class InversionApp:
    """Invert monitoring data for permeability with ``surrogate`` (which must record its training
    distribution, e.g. ``load_surrogate("default")``: the prior and the scenarios come from it).

    ``store``: a store to take truths from (optional); ``prior_samples`` / ``prior_seed``: the
    prior draw; ``well_x_m``: the starting monitoring wells.
    """

    def __init__(
        self,
        surrogate: Any,
        *,
        store: str | Path | None = None,
        prior_samples: int = 200,
        prior_seed: int = 31337,
        n_modes: int = 32,
        iterations: int = 100,
        well_x_m: tuple[float, ...] = (240.0, 480.0, 720.0),
        export_path: str = "inversion.nc",
    ) -> None:
        if surrogate.domain is None:
            raise ValueError(
                "the inversion app needs a surrogate that records its training distribution "
                "(surrogate.domain), e.g. load_surrogate('default') or a run trained by this version"
            )
        self.surrogate, self.space, self.store = surrogate, surrogate.domain.space, store
        self.grid = grid = surrogate.grid
        self.prior_samples, self.prior_seed, self.n_modes = prior_samples, prior_seed, n_modes
        self.columns: list[int] = sorted({min(int(x // grid.dx_m), grid.nx - 1) for x in well_x_m})
        self.source = widgets.Dropdown(
            options=[s for s in SOURCES if s != "store sample" or store is not None], description="truth"
        )
        self.seed = widgets.BoundedIntText(
            value=9001, min=0, max=2**31 - 1, description="scenario seed", style=_WIDE
        )
        self.sample = widgets.BoundedIntText(
            value=0, min=0, max=10**9, description="store sample", style=_WIDE
        )
        self.file = widgets.Text(value="", placeholder="observations .nc / .zarr", description="file")
        self.well_times = widgets.Text(value="200, 400, 600", description="well logs (d)", style=_WIDE)
        self.snapshot_times = widgets.Text(
            value="", placeholder="e.g. 200, 400", description="snapshots (d)", style=_WIDE
        )
        self.noise = widgets.BoundedFloatText(
            value=0.02, min=1e-4, max=1.0, step=0.005, description="noise std"
        )
        self.parameterisation = widgets.Dropdown(
            options=list(parameterisation_names()), value="pca", description="unknowns"
        )
        self.iterations = widgets.BoundedIntText(
            value=iterations, min=1, max=100_000, description="iterations"
        )
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.verify_button = widgets.Button(
            description="Verify with simulator",
            icon="check",
            disabled=True,
            layout=widgets.Layout(width="auto"),
        )
        self.clear_button = widgets.Button(description="Clear wells", icon="eraser")
        self.export_path = widgets.Text(value=export_path, description="export to")
        self.export_button = widgets.Button(description="Export", icon="download", disabled=True)
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description="progress")
        self.wells_text = widgets.HTML()
        self.status = Banner(height_px=30)
        smax = surrogate.max_saturation
        last = float(surrogate.times_days[-1])
        # one colour range for truth, start and inverted: the training space's permeability range
        k_scale = _permeability_scale(self.space)
        self.truth_k = ImagePanel(grid, "truth: click to add/remove wells", k_scale, wells=True, name="truth")
        self.start_k = ImagePanel(grid, "start (prior mean)", k_scale, wells=True, name="start")
        self.inverted_k = ImagePanel(grid, "inverted", k_scale, wells=True, name="inverted")
        self.misfit = CurvePanel(
            "misfit", "iteration", "chi2/N", {"misfit": SOLID}, marker=False, name="misfit"
        )
        self.data = CurvePanel(
            "data: observed vs predicted",
            "datum",
            "CO2 saturation (-)",
            {"observed": OBSERVED, "predicted": DASHED},
            marker=False,
            name="data",
        )
        scale = saturation_scale(smax)
        self.plume_truth = ImagePanel(grid, f"truth plume, {last:g} d", scale, name="plume_truth")
        self.plume_surrogate = ImagePanel(
            grid, f"surrogate (inverted), {last:g} d", scale, name="plume_surrogate"
        )
        self.plume_simulator = ImagePanel(
            grid, f"simulator (inverted), {last:g} d", scale, name="plume_simulator"
        )
        self.truth_k.figure.on_event(Tap, self._on_tap)
        self._runs = BackgroundRuns("ccs-fno-inversion", self.run_button, self.cancel_button)
        self._lock = self._runs.lock
        self._truths: dict[tuple, xr.Dataset] = {}
        self._prior = None
        self.truth: xr.Dataset | None = None
        self.observations: xr.Dataset | None = None
        self.result: xr.Dataset | None = None
        self.confirmed: xr.DataArray | None = None
        self._history: list[float] = []
        self._widget: widgets.VBox | None = None
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.verify_button.on_click(lambda _: self.verify())
        self.export_button.on_click(lambda _: self.export())
        self.clear_button.on_click(lambda _: self.set_wells([]))
        for control in (self.source, self.seed, self.sample):
            control.observe(lambda _: self._show_truth(), "value")
        self._show_truth()
        self._reset_results("press Run")
        self.status.show("info", "click on the truth map to add or remove monitoring wells, then press Run")

    # -- display -------------------------------------------------------------------------------

    @property
    def rows(self) -> list[list[ImagePanel | CurvePanel]]:
        return [
            [self.truth_k, self.start_k, self.inverted_k],
            [self.misfit, self.data],
            [self.plume_truth, self.plume_surrogate, self.plume_simulator],
        ]

    @property
    def widget(self) -> widgets.VBox:
        """The whole app: controls, buttons, the status line, the panels."""
        if self._widget is None:
            box = widgets.Layout(flex_flow="row wrap")
            truth = widgets.HBox([self.source, self.seed, self.sample, self.file], layout=box)
            design = widgets.HBox(
                [self.well_times, self.snapshot_times, self.noise, self.clear_button], layout=box
            )
            solve = widgets.HBox(
                [self.parameterisation, self.iterations, self.run_button, self.cancel_button, self.progress],
                layout=box,
            )
            after = widgets.HBox([self.verify_button, self.export_path, self.export_button], layout=box)
            self._widget = widgets.VBox(
                [
                    truth,
                    design,
                    self.wells_text,
                    solve,
                    after,
                    self.status.widget,
                    bokeh_view(panel_grid(self.rows)),
                ],
                layout=widgets.Layout(width="100%"),
            )
        return self._widget

    def static_figure(self):
        """The panels as they are now (matplotlib), for a notebook read offline."""
        return static_figure(self.rows)

    def _ipython_display_(self) -> None:
        from ccs_fno.widgets.static import show_figure

        show_figure(self.widget, static=self.static_figure())

    @property
    def status_text(self) -> str:
        return self.status.text

    # -- wells ---------------------------------------------------------------------------------

    def set_wells(self, x_m: list[float]) -> None:
        """Monitoring wells at the columns containing ``x_m`` (m)."""
        with self._lock:
            self.columns = sorted({min(int(x // self.grid.dx_m), self.grid.nx - 1) for x in x_m})
            self._draw_wells()

    def _on_tap(self, event: Tap) -> None:
        """A click on the truth map: remove the well within one column of it, else add one there."""
        if event.x is None:
            return
        column = min(max(int(event.x // self.grid.dx_m), 0), self.grid.nx - 1)
        with self._lock:
            near = [c for c in self.columns if abs(c - column) <= 1]
            self.columns = sorted(set(self.columns) - set(near)) if near else sorted({*self.columns, column})
            self._draw_wells()

    def well_x_m(self) -> list[float]:
        """Positions (m) of the monitoring wells: cell centres of their columns."""
        return [float(self.grid.x_m[c]) for c in self.columns]

    def _draw_wells(self) -> None:
        xs = self.well_x_m()
        self.wells_text.value = (
            f"<span class='ccs-wells'>{len(xs)} monitoring well{'s' if len(xs) != 1 else ''}"
            + (f" at x = {', '.join(f'{x:.0f}' for x in xs)} m" if xs else "")
            + "</span>"
        )
        for panel in (self.truth_k, self.start_k, self.inverted_k):
            wells = {f"MW{i + 1}": (int(self.grid.nz // 2), c) for i, c in enumerate(self.columns)}
            self._mark(panel, wells)

    def _mark(self, panel: ImagePanel, wells: dict[str, tuple[int, int]]) -> None:
        """Wells on ``panel``: monitoring wells as columns (black, at mid-depth), and the injector
        and producer of the truth (when known)."""
        if self.truth is not None:
            wells = {
                **wells,
                "injector": _cell(self.truth, "injector"),
                "producer": _cell(self.truth, "producer"),
            }
        panel.set_wells(wells)
        data = dict(panel.wells_source.data)
        data["colour"] = [
            MONITOR_COLOUR if n.startswith("MW") else c
            for n, c in zip(data["well"], data["colour"], strict=True)
        ]
        panel.wells_source.data = data

    # -- truth ---------------------------------------------------------------------------------

    def _key(self) -> tuple:
        source = self.source.value
        if source == "scenario":
            return (source, int(self.seed.value))
        if source == "store sample":
            return (source, int(self.sample.value))
        return (source, self.file.value)

    def _truth_permeability(self) -> np.ndarray | None:
        """The truth's permeability (mD) without simulating it (None: no truth)."""
        source, value = self._key()
        if source == "scenario":
            return sample_scenario(self.space, value, 0).permeability_md()
        if source == "store sample":
            return self._simulated_truth()["permeability"].values
        return None

    def _simulated_truth(self) -> xr.Dataset | None:
        """The truth of the current choice, simulated with the real simulator (cached)."""
        key = self._key()
        if key[0] == "observations file":
            return None
        if key not in self._truths:
            if key[0] == "scenario":
                self._truths[key] = simulate_truth(sample_scenario(self.space, key[1], 0))
            else:
                self._truths[key] = truth_from_store(self.store, key[1])
        return self._truths[key]

    def _show_truth(self) -> None:
        with self._lock:
            try:
                k = self._truth_permeability()
            except (ValueError, TypeError, OSError) as err:
                self.status.show("error", f"cannot build this truth: {err}")
                return
            if k is None:
                self.truth = None
                self.truth_k.placeholder("no truth: the observations come from a file")
                self.plume_truth.placeholder("no truth")
            else:
                key = self._key()
                self.truth = (
                    self._truths[key] if key in self._truths else _permeability_only(k, self.space, key)
                )
                self.truth_k.show(k)
                self.plume_truth.placeholder("press Run (simulates the truth)")
                if "saturation" in self.truth:
                    self.plume_truth.show(self.truth["saturation"].values[-1])
            self._draw_wells()

    # -- run -----------------------------------------------------------------------------------

    def design(self) -> ObservationDesign:
        """The observation design the controls describe (ValueError when they describe none)."""
        well_times = parse_days(self.well_times.value, "well log times")
        snapshot_times = parse_days(self.snapshot_times.value, "snapshot times")
        wells = MonitoringWells(self.well_x_m(), well_times) if self.columns and well_times else None
        snapshots = Snapshots(snapshot_times) if snapshot_times else None
        if wells is None and snapshots is None:
            raise ValueError(
                "nothing is observed: add monitoring wells (click the truth map) or snapshot times"
            )
        return ObservationDesign(wells=wells, snapshots=snapshots, noise_std=float(self.noise.value))

    def config(self) -> InversionConfig:
        return InversionConfig(
            parameterisation=self.parameterisation.value,
            n_modes=self.n_modes,
            iterations=int(self.iterations.value),
        )

    def run(self) -> Future:
        """Start an inversion in the background; return its future (the result Dataset)."""
        with self._lock:
            if self._runs.running:
                return self.future
            self._history = []
            self.verify_button.disabled = self.export_button.disabled = True
            self.progress.value, self.progress.bar_style = 0.0, "info"
            self._reset_results("running ...")
            self.status.show("info", "preparing: simulating the truth and synthesising the observations ...")
            return self._runs.start(self._run)

    @property
    def future(self) -> Future | None:
        """The future of the last run (its result Dataset), or None before the first."""
        return self._runs.future

    def cancel(self) -> None:
        """Stop the running inversion after its current iteration (the best model so far is kept)."""
        self._runs.cancel()

    def _run(self) -> xr.Dataset:
        try:
            with compute_threads(1):
                if self.source.value == "observations file":
                    observations, truth = load_observations(self.file.value), None
                    self._check_file_grid(observations)
                else:
                    truth = self._simulated_truth()
                    observations = synthesize_observations(truth, self.design(), seed=int(self.seed.value))
                if self._prior is None:
                    self._prior = load_prior_for(self.surrogate, self.prior_samples, self.prior_seed)
                with self._lock:
                    self.truth, self.observations = truth, observations
                    self._show_truth_plume()
                    self.status.show("info", f"inverting {_count(observations)} observations ...")
                result = invert(
                    self.surrogate,
                    observations,
                    self._prior,
                    self.config(),
                    self._on_progress,
                    self._runs.cancel_event,
                )
        except Exception as err:
            with self._lock:
                self.progress.bar_style = "danger"
                self._reset_results("failed: see the status line")
                self.status.show("error", f"the inversion failed: {type(err).__name__}: {err}")
            raise
        with self._lock:
            self.result, self.confirmed = result, None
            self.verify_button.disabled = self.export_button.disabled = False
            self.progress.bar_style = "success" if result.attrs["status"] == "completed" else "warning"
            self._show_result(result)
        return result

    def _check_file_grid(self, observations: xr.Dataset) -> None:
        grid = observation_grid(observations)
        if grid != self.grid:
            raise ValueError(f"the observations' grid {grid} is not the surrogate's {self.grid}")

    def _on_progress(self, p) -> None:
        self._history.append(p.misfit)
        total = p.iterations * p.restarts
        done = p.restart * p.iterations + p.iteration
        if p.iteration % 5 == 0 or p.iteration == p.iterations:
            with self._lock:
                self.progress.value = min(done / total, 1.0)
                history = np.asarray(self._history)
                self.misfit.set_line("misfit", np.arange(history.size), history)

    # -- results -------------------------------------------------------------------------------

    def _reset_results(self, text: str) -> None:
        self.start_k.placeholder(text)
        self.inverted_k.placeholder(text)
        self.plume_surrogate.placeholder(text)
        self.plume_simulator.placeholder("press Verify with simulator after a run")
        self.misfit.clear_line("misfit")
        self.data.clear_line("observed")
        self.data.clear_line("predicted")

    def _show_truth_plume(self) -> None:
        if self.truth is None:
            self.plume_truth.placeholder("no truth")
        else:
            self.plume_truth.show(self.truth["saturation"].values[-1])

    def _show_result(self, result: xr.Dataset) -> None:
        self.start_k.show(result["start_permeability"].values)
        self.inverted_k.show(result["permeability"].values)
        self._draw_wells()
        self.plume_surrogate.show(result["forecast_saturation"].values[-1])
        history = result["misfit_history"].values.ravel()
        history = history[np.isfinite(history)]
        self.misfit.set_line("misfit", np.arange(history.size), history)
        observed = np.concatenate([result[n].values.ravel() for n in _kinds(result)])
        predicted = np.concatenate([result[f"predicted_{n}"].values.ravel() for n in _kinds(result)])
        self.data.set_line("observed", np.arange(observed.size), observed)
        self.data.set_line("predicted", np.arange(predicted.size), predicted)
        steps = int(np.isfinite(result["misfit_history"].values).sum()) - 1
        text = (
            f"{result.attrs['status']}: chi2/N = {float(result['normalised_misfit']):.2f} after "
            f"{steps} iterations in {result.attrs['elapsed_s']:.1f} s"
        )
        if self.truth is not None and "saturation" in self.truth:
            error = plume_rel_l2(
                result["forecast_saturation"].values[-1], self.truth["saturation"].values[-1]
            )
            text += f"; surrogate forecast vs truth: relative L2 {error:.2f}"
        self.status.show("info" if result.attrs["status"] == "completed" else "warning", text)

    def verify(self) -> Future:
        """Re-simulate the inverted permeability in the background; return the future of the
        simulator-confirmed saturation (time, z, x)."""
        with self._lock:
            if self.result is None:
                raise ValueError("nothing to verify: press Run first")
            result = self.result
            self.verify_button.disabled = True
            self.plume_simulator.placeholder("simulating in the background ...")
            return self._runs.submit(self._verify, result)

    def _verify(self, result: xr.Dataset) -> xr.DataArray:
        try:
            confirmed = verify(result)
        except Exception as err:
            with self._lock:
                self.verify_button.disabled = False
                self.plume_simulator.placeholder("the simulator failed")
                self.status.show("error", f"the simulator failed: {type(err).__name__}: {err}")
            raise
        with self._lock:
            self.verify_button.disabled = False
            if result is not self.result:
                return confirmed  # a newer run replaced it: show nothing stale
            self.confirmed = confirmed
            plume = confirmed.values[-1]
            self.plume_simulator.show(plume)
            surrogate = plume_rel_l2(result["forecast_saturation"].values[-1], plume)
            text = f"simulator-confirmed: surrogate vs simulator relative L2 {surrogate:.2f}"
            if self.truth is not None and "saturation" in self.truth:
                truth = self.truth["saturation"].values[-1]
                text += f"; simulator vs truth {plume_rel_l2(plume, truth):.2f}"
            self.status.show("info", text)
        return confirmed

    def export(self) -> Path:
        """Write the result to the export path (``.nc`` or ``.zarr``)."""
        with self._lock:
            if self.result is None:
                raise ValueError("nothing to export: press Run first")
            try:
                path = save_result(self.result, self.export_path.value)
            except (ValueError, OSError) as err:
                self.status.show("error", f"export failed: {err}")
                raise
            self.status.show("info", f"result written to {path}")
            return path

    def close(self) -> None:
        """Cancel a running inversion and stop the background thread."""
        self._runs.close()


def _permeability_scale(space: Any) -> ColourScale:
    """Permeability (mD, log) over the channel's two values, or the data's range otherwise."""
    params = space.geology_params
    if hasattr(params, "channel_md"):
        low, high = sorted((params.background_md, params.channel_md))
        return replace(permeability_scale(), low=0.8 * low, high=1.25 * high)
    return permeability_scale()


def _cell(ds: xr.Dataset, well: str) -> tuple[int, int]:
    return int(ds[f"{well}_z"].item()), int(ds[f"{well}_x"].item())


def _kinds(ds: xr.Dataset) -> list[str]:
    return [n for n in ("well_saturation", "snapshot_saturation") if n in ds]


def _count(obs: xr.Dataset) -> int:
    return int(sum(obs[n].size for n in _kinds(obs)))


def _permeability_only(k: np.ndarray, space: Any, key: tuple) -> xr.Dataset:
    """A truth not simulated yet: its permeability and wells (from the scenario)."""
    scenario = sample_scenario(space, key[1], 0)
    return xr.Dataset(
        {
            "permeability": (("z", "x"), k),
            "injector_z": scenario.injector_zx[0],
            "injector_x": scenario.injector_zx[1],
            "producer_z": scenario.producer_zx[0],
            "producer_x": scenario.producer_zx[1],
        }
    )
