"""The uncertainty app: prior (or posterior) ensemble statistics with the calibrated surrogate error.

Controls: prior / posterior, ensemble size, threshold s*, time; "Run" draws the prior ensemble
(``ccs_fno.uq.prior_ensemble``) in a background thread with a progress bar and "Cancel" (the
ensemble stops after the current batch and shows the members so far); "Export" writes the
statistics as NetCDF. Panels: mean and standard deviation of the CO2 saturation, P(S > s*) and,
with a calibration, its conservative variant P(S + band > s*); a fan chart of plume area (P10-P90
shaded, P50, the conservative P90, the truth when known); the calibration table (nominal vs
empirical coverage). In posterior mode "Run" computes the randomised-maximum-likelihood posterior
of the given observations (``ccs_fno.uq.posterior_ensemble``: one inversion per member), or the
app shows a posterior ensemble Dataset given to it; without either the switch says what is missing.

Everything shown is computed by ``ccs_fno.uq``; this module only displays it. Exceedance maps
are computed for a fixed set of thresholds (``THRESHOLDS``) during the run, so moving s* never
re-runs the ensemble.
"""

from __future__ import annotations

import html
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np
import xarray as xr

from ccs_fno.uq import Calibration, posterior_ensemble, prior_ensemble
from ccs_fno.widgets.background import BackgroundRuns
from ccs_fno.widgets.panels import (
    Banner,
    ColourScale,
    CurvePanel,
    ImagePanel,
    LineStyle,
    bokeh_view,
    panel_grid,
    saturation_scale,
)
from ccs_fno.widgets.static import static_figure

THRESHOLDS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
FAN_COLOUR = "#1f77b4"
FAN_SIZE_PX = (1200, 300)  # the fan chart spans the row of four maps: wide and low
FAN_LINES = {
    "P50": LineStyle(FAN_COLOUR),
    "P90 conservative": LineStyle("#ff7f0e", "dotted"),
    "truth": LineStyle("#d62728", "dashed"),
}
PROBABILITY = ColourScale("probability (-)", "Blues256", 0.0, 1.0)
NO_OBSERVATIONS = (
    "a posterior needs observations: pass observations= (ccs_fno.inversion.load_observations) for an "
    "RML posterior, or posterior= (an ensemble Dataset of inversions)"
)


def _table_html(calibration: Calibration | None, table: xr.Dataset | None) -> str:
    """The calibration table as HTML: nominal vs empirical coverage (and band sizes)."""
    if calibration is None:
        return "<i>no calibration: the maps show the surrogate's predictions without its error band</i>"
    head = (
        f"<b>calibrated surrogate error</b> (n = {calibration.n_calibration} held-out simulations, "
        f"delta = {calibration.data.attrs['delta']:g})"
    )
    cols = ["nominal", "pointwise coverage", "area coverage", "fields covered", "area band at end"]
    rows = []
    for level in calibration.levels:
        area = f"± {float(calibration.area_band(level)[-1]):,.0f} m²"
        if table is not None and level in table["level"].values:
            r = {k: float(v) for k, v in table.sel(level=level).data_vars.items()}
            cells = [
                f"{r['coverage']:.1%} ({r['coverage_low']:.0%}–{r['coverage_high']:.0%})",
                f"{r['area_coverage']:.1%}",
                f"{r['field_coverage']:.1%}",
            ]
        else:
            cells = ["not tested"] * 3
        rows.append([f"{level:.0%}", *cells, area])
    body = "".join(
        "<tr>" + "".join(f"<td style='padding: 1px 8px'>{html.escape(c)}</td>" for c in row) + "</tr>"
        for row in rows
    )
    header = "".join(f"<th style='padding: 1px 8px'>{html.escape(c)}</th>" for c in cols)
    return f"<div class='ccs-uq-table'>{head}<table><tr>{header}</tr>{body}</table></div>"


class UncertaintyApp:
    """Prior/posterior plume statistics of ``surrogate`` with its ``calibration`` (optional).

    ``space``: the prior (default: the surrogate's training space); ``prior`` / ``posterior``:
    ensemble Datasets (``prior_ensemble``'s schema) to show at once; ``observations`` (an
    observations Dataset), ``inversion_prior`` (a ``PriorEnsemble``; default drawn from ``space``)
    and ``inversion_config`` (default pca, 32 modes) for posterior runs; ``truth_area_m2``: a known
    plume-area curve (m², one per report time) drawn on the fan chart; ``table``: the calibration table
    (``ccs_fno.uq.evaluate_calibration``); ``level``: the band of the conservative variant (default
    the highest calibrated); ``export_dir``: where "Export" writes.
    """

    def __init__(
        self,
        surrogate: Any,
        calibration: Calibration | None = None,
        *,
        space: Any = None,
        prior: xr.Dataset | None = None,
        posterior: xr.Dataset | None = None,
        observations: xr.Dataset | None = None,
        inversion_prior: Any = None,
        inversion_config: Any = None,
        truth_area_m2: np.ndarray | None = None,
        table: xr.Dataset | None = None,
        members: int = 200,
        master_seed: int = 0,
        level: float | None = None,
        batch_size: int = 64,
        export_dir: str | Path = ".",
    ) -> None:
        self.surrogate, self.calibration = surrogate, calibration
        self.space = space if space is not None else surrogate.domain.space
        self.master_seed, self.batch_size, self.export_dir = master_seed, batch_size, Path(export_dir)
        if calibration is None:
            self.level = 0.9 if level is None else float(level)
        else:  # default: the widest calibrated band
            self.level = float(calibration.levels[-1]) if level is None else calibration.check_level(level)
        self.results: dict[str, xr.Dataset | None] = {"prior": prior, "posterior": posterior}
        self.observations, self.inversion_prior = observations, inversion_prior
        self.inversion_config = inversion_config
        self._message = (
            ("info", "press Run for a prior ensemble")
            if prior is None
            else ("info", f"prior ensemble of {prior.sizes['member']} members")
        )
        times = surrogate.times_days
        self.truth_area_m2 = None if truth_area_m2 is None else np.asarray(truth_area_m2, float)
        self.mode = widgets.ToggleButtons(
            options=["prior", "posterior"], value="prior", description="ensemble"
        )
        self.members = widgets.BoundedIntText(value=members, min=1, max=1_000_000, description="members")
        self.threshold = widgets.SelectionSlider(
            options=[(f"{t:g}", t) for t in THRESHOLDS], value=0.05, description="s*", continuous_update=True
        )
        self.time = widgets.SelectionSlider(
            options=[(f"{t:g} d", float(t)) for t in times], value=float(times[-1]), description="time"
        )
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.export_button = widgets.Button(description="Export", icon="download", disabled=True)
        self.progress = widgets.IntProgress(value=0, min=0, max=members, description="progress")
        self.status = Banner(height_px=30)
        self.table = widgets.HTML(_table_html(calibration, table))
        grid = surrogate.grid
        self.mean = ImagePanel(
            grid, "mean CO2 saturation", saturation_scale(surrogate.max_saturation), name="mean"
        )
        self.std = ImagePanel(
            grid, "std of CO2 saturation", ColourScale("std (-)", "Magma256", 0.0), name="std"
        )
        self.exceed = ImagePanel(grid, "P(S > s*)", PROBABILITY, name="exceedance")
        self.conservative = ImagePanel(grid, "P(S + band > s*)", PROBABILITY, name="conservative")
        self.fan = CurvePanel(
            "plume area",
            "time (d)",
            "area (m² of section)",
            FAN_LINES,
            name="fan",
            y_format="0,0",
            size_px=FAN_SIZE_PX,
        )
        self.fan_band = self.fan.figure.varea(
            "x", "y1", "y2", source=_empty_band(), fill_color=FAN_COLOUR, fill_alpha=0.25, visible=False
        )
        self._runs = BackgroundRuns("ccs-fno-uq", self.run_button, self.cancel_button)
        self._lock = self._runs.lock
        self._widget: widgets.VBox | None = None
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.export_button.on_click(lambda _: self.export())
        self.mode.observe(lambda _: self.refresh(), "value")
        self.threshold.observe(lambda _: self.refresh(), "value")
        self.time.observe(lambda _: self.refresh(), "value")
        self.refresh()

    # -- display -------------------------------------------------------------------------------

    @property
    def rows(self) -> list[list[ImagePanel | CurvePanel]]:
        return [[self.mean, self.std, self.exceed, self.conservative], [self.fan]]

    @property
    def widget(self) -> widgets.VBox:
        if self._widget is None:
            controls = widgets.HBox([self.mode, self.members, self.threshold, self.time])
            buttons = widgets.HBox([self.run_button, self.cancel_button, self.export_button, self.progress])
            self._widget = widgets.VBox(
                [controls, buttons, self.status.widget, bokeh_view(panel_grid(self.rows)), self.table],
                layout=widgets.Layout(width="100%"),
            )
        return self._widget

    def static_figure(self):
        """The panels as they are now (matplotlib), with the P10-P90 band of the fan chart."""
        figure = static_figure(self.rows)
        data = self.fan_band.data_source.data
        if self.fan_band.visible and len(data["x"]):
            figure.axes[-1].fill_between(
                data["x"], data["y1"], data["y2"], color=FAN_COLOUR, alpha=0.25, label="P10-P90"
            )
            figure.axes[-1].legend(loc="upper left", fontsize="small")
        return figure

    def _ipython_display_(self) -> None:
        from ccs_fno.widgets.static import show_figure

        show_figure(self.widget, static=self.static_figure())

    # -- state ---------------------------------------------------------------------------------

    @property
    def result(self) -> xr.Dataset | None:
        """The statistics shown now (of the selected ensemble), or None."""
        return self.results[self.mode.value]

    def refresh(self) -> None:
        """Show the selected ensemble at the selected threshold and time."""
        with self._lock:
            ds = self.result
            self.export_button.disabled = ds is None
            if ds is None:
                if self.mode.value == "prior" or self.observations is not None:
                    what = "no ensemble yet: press Run"
                else:
                    what = "no posterior: no observations given"
                for panel in (self.mean, self.std, self.exceed, self.conservative):
                    panel.placeholder(what)
                for name in FAN_LINES:
                    self.fan.clear_line(name)
                self.fan_band.visible = False
                if self.mode.value == "posterior" and self.observations is None:
                    self.status.show("warning", NO_OBSERVATIONS)
                elif self.mode.value == "posterior":
                    self.status.show("info", "press Run for an RML posterior ensemble of the observations")
                else:
                    self.status.show(*self._message)
                return
            self.status.show(*self._message)
            t, s_star = float(self.time.value), float(self.threshold.value)
            at = ds.sel(time=t, method="nearest")
            n = ds.sizes["member"]
            _show(self.mean, at["mean_saturation"], f"mean CO2 saturation at {t:g} d ({n} members)", "no CO2")
            _show(self.std, at["std_saturation"], f"std of CO2 saturation at {t:g} d", "no spread: no CO2")
            p = at["exceedance_probability"].sel(threshold=s_star, method="nearest")
            _show(self.exceed, p, f"P(S > {s_star:g}) at {t:g} d", f"no member above s* = {s_star:g}")
            if "exceedance_probability_conservative" in ds:
                pc = at["exceedance_probability_conservative"].sel(threshold=s_star, method="nearest")
                title = f"P(S + {self.level:.0%} band > {s_star:g}) at {t:g} d"
                _show(self.conservative, pc, title, f"no member above s* = {s_star:g}")
            else:
                self.conservative.placeholder("no calibration: no conservative variant")
            self._show_fan(ds, t)

    def _show_fan(self, ds: xr.Dataset, t: float) -> None:
        times = ds["time"].values
        q = ds["plume_area_quantiles_m2"]
        self.fan_band.data_source.data = {
            "x": times,
            "y1": q.sel(quantile=0.1, method="nearest").values,
            "y2": q.sel(quantile=0.9, method="nearest").values,
        }
        self.fan_band.visible = True
        self.fan.set_line("P50", times, q.sel(quantile=0.5, method="nearest").values)
        if "plume_area_conservative_quantiles_m2" in ds:
            cons = ds["plume_area_conservative_quantiles_m2"].sel(quantile=0.9, method="nearest")
            self.fan.set_line("P90 conservative", times, cons.values)
        else:
            self.fan.clear_line("P90 conservative")
        if self.truth_area_m2 is not None and self.truth_area_m2.shape == times.shape:
            self.fan.set_line("truth", times, self.truth_area_m2)
        else:
            self.fan.clear_line("truth")
        self.fan.set_marker(t)
        self.fan.figure.title.text = f"plume area: P10-P90 shaded, P50 ({ds.sizes['member']} members)"

    # -- actions -------------------------------------------------------------------------------

    def run(self) -> Future | None:
        """Run the selected ensemble (prior, or the RML posterior of the observations) in the
        background; return its future (the statistics), or None when a posterior has no
        observations (the banner says so)."""
        with self._lock:
            if self._runs.running:
                return self.future
            kind = self.mode.value
            if kind == "posterior" and self.observations is None:
                self.status.show("warning", NO_OBSERVATIONS)
                return None
            n = int(self.members.value)
            self.progress.max, self.progress.value = n, 0
            what = "through the surrogate" if kind == "prior" else "inversions (RML posterior)"
            self._message = ("info", f"running {n} {kind} members: {what} ...")
            self.status.show(*self._message)
            return self._runs.start(self._run, n, kind)

    @property
    def future(self) -> Future | None:
        """The future of the last run (its statistics), or None before the first."""
        return self._runs.future

    def _posterior(self, n: int) -> xr.Dataset:
        from ccs_fno.inversion import InversionConfig, draw_prior

        prior = self.inversion_prior
        if prior is None or prior.n_samples < n:
            prior = self.inversion_prior = draw_prior(self.space, max(n, 2), self.master_seed + 1)
        config = self.inversion_config or InversionConfig(
            parameterisation="pca", n_modes=min(32, prior.n_samples - 1)
        )
        return posterior_ensemble(
            self.surrogate,
            self.observations,
            prior,
            n,
            config,
            seed=self.master_seed,
            thresholds=THRESHOLDS,
            calibration=self.calibration,
            level=self.level,
            progress=self._progress,
            should_stop=self._runs.cancel_event.is_set,
        )

    def _run(self, n: int, kind: str = "prior") -> xr.Dataset:
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the prior is the training distribution
                if kind == "posterior":
                    ds = self._posterior(n)
                else:
                    ds = prior_ensemble(
                        self.surrogate,
                        n,
                        self.space,
                        self.master_seed,
                        thresholds=THRESHOLDS,
                        batch_size=self.batch_size,
                        calibration=self.calibration,
                        level=self.level,
                        progress=self._progress,
                        should_stop=self._runs.cancel_event.is_set,
                    )
        except Exception as err:
            with self._lock:
                self._message = ("error", f"the ensemble failed: {err}")
                self.status.show(*self._message)
            raise
        with self._lock:
            self.results[kind] = ds
            done = ds.sizes["member"]
            if kind == "posterior":
                text = f"{done} of {n} posterior members ({ds.attrs['inversion_s']:.1f} s of inversion)"
            else:
                seconds = ds.attrs["sampling_s"] + ds.attrs["predict_s"]
                text = f"{done} of {n} members ({seconds:.1f} s of sampling and prediction)"
            cancelled = bool(ds.attrs["cancelled"])
            self._message = ("warning", f"cancelled: {text}") if cancelled else ("info", f"done: {text}")
            self.refresh()
        return ds

    def _progress(self, done: int, total: int) -> None:
        self.progress.value = done

    def cancel(self) -> None:
        """Stop the running ensemble after its current batch (the members so far are shown)."""
        self._runs.cancel()

    def export(self, path: str | Path | None = None) -> Path:
        """Write the shown statistics as NetCDF (default ``export_dir/uq_<mode>.nc``)."""
        ds = self.result
        if ds is None:
            raise ValueError("nothing to export: run an ensemble first")
        path = Path(path) if path is not None else self.export_dir / f"uq_{self.mode.value}.nc"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.to_netcdf(path, engine="scipy")
        self._message = ("info", f"exported {ds.sizes['member']} members' statistics to {path}")
        self.status.show(*self._message)
        return path

    def close(self) -> None:
        """Cancel a running ensemble and stop the background thread."""
        self._runs.close()


def _show(panel: ImagePanel, field: xr.DataArray, title: str, nothing: str) -> None:
    """Draw ``field``, or say ``nothing`` in words when it is zero everywhere (no all-zero map)."""
    values = field.values
    if np.any(values > 0):
        panel.show(values, title)
    else:
        panel.placeholder(nothing, title)


def _empty_band():
    from bokeh.models import ColumnDataSource

    return ColumnDataSource({"x": np.zeros(0), "y1": np.zeros(0), "y2": np.zeros(0)})
