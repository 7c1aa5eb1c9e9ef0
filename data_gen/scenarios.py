"""Scenario sampler: (master seed, sample index) -> geology, injection rate and well cells.

Sample ``i`` of an ensemble is drawn from ``np.random.SeedSequence([master_seed, i])`` alone, so it
is reproducible bit for bit without generating the samples before it. Wells are placed in metres
and mapped to cells of the grid, so the same ``(master_seed, i)`` on a finer grid of the same
section is the same physical scenario (to within a coarse cell).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from data_gen.geology import (
    GEOLOGY_KINDS,
    ChannelParams,
    GaussianParams,
    GeologyParams,
    channel_mask,
    default_params,
    params_from_dict,
    params_to_dict,
    permeability,
)
from data_gen.grid import Grid
from data_gen.physics import SimulationConfig, SimulationResult, simulate

SECTION_M = 960.0  # width and depth of the canonical section
DEFAULT_THICKNESS_M = 15.0  # out-of-plane cell thickness of the canonical section
# Largest injection rate a scenario space allows, in pore volumes of the section per day: the whole
# pore volume in 1000 days (3456 m^3/day for the canonical 960 m x 960 m x 15 m section at porosity
# 0.25; the default range 50-150 m^3/day is 1.4e-5 to 4.3e-5). The simulator's step count grows
# linearly with the rate, so this also bounds the work of one sample.
MAX_RATE_PORE_VOLUMES_PER_DAY = 1e-3

# Uniform per-sample draws of GRF parameters for gaussian geology (physical units, 960 m section).
DEFAULT_GAUSSIAN_RANGES: dict[str, tuple[float, float]] = {
    "angle_deg": (-20.0, 20.0),
    "geometric_mean_md": (20.0, 120.0),
    "len_scale_m": (120.0, 480.0),
}


def section_grid(resolution: int, section_m: float = SECTION_M) -> Grid:
    """A square ``resolution`` x ``resolution`` grid over a ``section_m`` section, 15 m thick."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)):
        raise TypeError(f"resolution must be an integer number of cells, got {resolution!r}")
    if resolution < 2:
        raise ValueError(f"resolution must be >= 2 cells, got {resolution}")
    cell_m = section_m / resolution
    return Grid(int(resolution), int(resolution), cell_m, cell_m, DEFAULT_THICKNESS_M)


def _unwelled(config: SimulationConfig) -> SimulationConfig:
    # Wells and rate are drawn per sample; the space keeps the rest of the configuration.
    return replace(config, injector_zx=None, producer_zx=None)


def _range(owner: str, value: Any, lower: float | None = None) -> tuple[float, float]:
    """``value`` as an ordered (low, high) pair of finite floats above ``lower``, or raise."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{owner} must be a (low, high) pair of numbers, got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"{owner} must be finite and ordered (low <= high), got {value!r}")
    if lower is not None and low <= lower:
        raise ValueError(f"{owner} must lie above {lower:g}, got {value!r}")
    return low, high


@dataclass(frozen=True)
class ScenarioSpace:
    """The prior from which scenarios are drawn.

    - ``geology``: one of ``GEOLOGY_KINDS``; ``geology_params`` the base parameters (default:
      ``default_params(geology, grid)``); ``geology_ranges`` maps numeric parameter names to
      (low, high) bounds of uniform per-sample draws (default: ``DEFAULT_GAUSSIAN_RANGES`` for
      gaussian geology, none for channels, whose geometry varies with the seed).
    - ``simulation``: everything but the rock, wells and rate; its grid is the grid of the space.
      Its well cells are dropped (wells are drawn per sample); its ``rate_m3_per_day`` is unused.
    - ``rate_m3_per_day_range``: uniform draw of the injection rate (m^3/day), > 0 and at most
      ``MAX_RATE_PORE_VOLUMES_PER_DAY`` pore volumes of the section per day.
    - ``injector_x_m`` / ``producer_x_m``: well positions along x (m). The well depth is drawn per
      sample: for channel geology, uniformly among the channel cells of the well's column (so the
      well is completed inside the channel); for gaussian geology, uniformly in
      ``well_depth_range_m`` (m below the section top; default: the whole section).
    - ``porosity``: constant porosity of every sample.
    """

    geology: str = "channel"
    simulation: SimulationConfig = field(
        default_factory=lambda: SimulationConfig(injector_zx=None, producer_zx=None)
    )
    geology_params: GeologyParams | None = None
    geology_ranges: Mapping[str, tuple[float, float]] | None = None
    rate_m3_per_day_range: tuple[float, float] = (50.0, 150.0)
    injector_x_m: float = 52.5
    producer_x_m: float = 937.5
    well_depth_range_m: tuple[float, float] | None = None
    porosity: float = 0.25

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise fields in place once, here
        if self.geology not in GEOLOGY_KINDS:
            raise ValueError(f"unknown geology {self.geology!r}; allowed: {GEOLOGY_KINDS}")
        if not isinstance(self.simulation, SimulationConfig):
            raise TypeError(f"simulation must be a SimulationConfig, got {type(self.simulation).__name__}")
        set_(self, "simulation", _unwelled(self.simulation))
        grid = self.grid
        params = self.geology_params
        if params is None:
            params = default_params(self.geology, grid)
        expected = ChannelParams if self.geology == "channel" else GaussianParams
        if not isinstance(params, expected):
            raise TypeError(
                f"geology_params for {self.geology!r} geology must be {expected.__name__}, "
                f"got {type(params).__name__}"
            )
        set_(self, "geology_params", params)
        ranges = self.geology_ranges
        if ranges is None:
            ranges = DEFAULT_GAUSSIAN_RANGES if self.geology == "gaussian" else {}
        set_(self, "geology_ranges", self._checked_ranges(ranges))
        width_m, depth_m = grid.nx * grid.dx_m, grid.nz * grid.dz_m
        for name in ("injector_x_m", "producer_x_m"):
            x = float(getattr(self, name))
            if not 0.0 <= x < width_m:
                raise ValueError(f"{name} must lie in [0, {width_m:g}) m (the section), got {x!r}")
            set_(self, name, x)
        if self.injector_column == self.producer_column:
            raise ValueError(
                f"injector_x_m ({self.injector_x_m:g} m) and producer_x_m "
                f"({self.producer_x_m:g} m) "
                f"fall in the same grid column {self.injector_column}; move them apart"
            )
        depths = self.well_depth_range_m
        if self.geology == "channel":
            if depths is not None:
                raise ValueError(
                    "well_depth_range_m applies to gaussian geology only: channel wells are "
                    f"completed inside the channel; got {depths!r}"
                )
        else:
            depths = (0.0, depth_m) if depths is None else _range("well_depth_range_m", depths)
            if depths[0] < 0.0 or depths[1] > depth_m:
                raise ValueError(
                    f"well_depth_range_m must lie within the section [0, {depth_m:g}] m, got {depths!r}"
                )
            set_(self, "well_depth_range_m", depths)
        porosity = float(self.porosity)
        if not 0.0 < porosity <= 1.0:
            raise ValueError(f"porosity must lie in (0, 1], got {self.porosity!r}")
        set_(self, "porosity", porosity)
        rates = _range("rate_m3_per_day_range", self.rate_m3_per_day_range, 0.0)
        most = MAX_RATE_PORE_VOLUMES_PER_DAY * self.pore_volume_m3
        if rates[1] > most:
            raise ValueError(
                f"rate_m3_per_day_range {self.rate_m3_per_day_range!r} reaches "
                f"{rates[1] / self.pore_volume_m3:.3g} pore volumes per day of this section "
                f"(pore volume {self.pore_volume_m3:.4g} m^3); allowed: rates > 0 up to "
                f"{MAX_RATE_PORE_VOLUMES_PER_DAY:g} pore volumes per day = {most:.4g} m^3/day "
                "(the section's whole pore volume in 1000 days); lower the range"
            )
        set_(self, "rate_m3_per_day_range", rates)

    def _checked_ranges(self, ranges: Any) -> tuple[tuple[str, float, float], ...]:
        """Ranges as a name-sorted tuple; both ends must give valid geology parameters."""
        if isinstance(ranges, Mapping):
            items = [(name, value) for name, value in ranges.items()]
        else:  # the normalised form: ((name, low, high), ...)
            try:
                items = [(name, (low, high)) for name, low, high in ranges]
            except (TypeError, ValueError):
                raise TypeError(
                    f"geology_ranges must map parameter names to (low, high), got {ranges!r}"
                ) from None
        params = self.geology_params
        numeric = sorted(f.name for f in fields(params) if isinstance(getattr(params, f.name), float))
        out = []
        for name, value in sorted(items):
            if name not in numeric:
                raise ValueError(
                    f"geology_ranges key {name!r} is not a numeric {type(params).__name__} "
                    f"parameter; allowed: {numeric}"
                )
            low, high = _range(f"geology_ranges[{name!r}]", value)
            for end in (low, high):
                try:
                    replace(params, **{name: end})
                except (TypeError, ValueError) as err:
                    raise ValueError(f"geology_ranges[{name!r}] = {value!r}: {err}") from None
            out.append((name, low, high))
        return tuple(out)

    @property
    def grid(self) -> Grid:
        return self.simulation.grid

    @property
    def pore_volume_m3(self) -> float:
        """Pore volume of the whole section (m^3)."""
        grid = self.grid
        return grid.nz * grid.nx * grid.cell_volume_m3 * self.porosity

    @property
    def injector_column(self) -> int:
        return min(int(self.injector_x_m // self.grid.dx_m), self.grid.nx - 1)

    @property
    def producer_column(self) -> int:
        return min(int(self.producer_x_m // self.grid.dx_m), self.grid.nx - 1)

    @property
    def drawn_geology_names(self) -> tuple[str, ...]:
        """Names of the geology parameters drawn per sample."""
        return tuple(name for name, _, _ in self.geology_ranges)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form; ``from_dict`` rebuilds an equal space."""
        return {
            "geology": self.geology,
            "geology_params": params_to_dict(self.geology_params),
            "geology_ranges": {name: [low, high] for name, low, high in self.geology_ranges},
            "rate_m3_per_day_range": list(self.rate_m3_per_day_range),
            "injector_x_m": self.injector_x_m,
            "producer_x_m": self.producer_x_m,
            "well_depth_range_m": None if self.well_depth_range_m is None else list(self.well_depth_range_m),
            "porosity": self.porosity,
            "simulation": self.simulation.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScenarioSpace:
        data = dict(data)
        data["simulation"] = SimulationConfig.from_dict(data["simulation"])
        data["geology_params"] = params_from_dict(data["geology"], data["geology_params"])
        return cls(**data)


def default_space(geology: str = "channel", resolution: int = 64, **overrides: Any) -> ScenarioSpace:
    """The canonical space (960 m section, FwiFlow-style defaults) at ``resolution`` cells a side.

    ``overrides`` are ScenarioSpace fields, plus ``report_times_days`` and ``max_steps`` (the
    step budget of one simulation) for the simulation.
    """
    sim_fields = {k: overrides.pop(k) for k in ("report_times_days", "max_steps") if k in overrides}
    simulation = SimulationConfig(
        grid=section_grid(resolution), injector_zx=None, producer_zx=None, **sim_fields
    )
    return ScenarioSpace(geology=geology, simulation=simulation, **overrides)


def _check_index(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def _streams(master_seed: int, index: int) -> tuple[np.random.SeedSequence, np.random.Generator]:
    """Independent streams of sample ``index``: the geology seed's and the other draws'."""
    root = np.random.SeedSequence([_check_index("master_seed", master_seed), _check_index("index", index)])
    geology_stream, draws_stream = root.spawn(2)
    return geology_stream, np.random.default_rng(draws_stream)


def sample_seed(master_seed: int, index: int) -> int:
    """The geology seed (0 <= seed < 2**63) of sample ``index`` of ensemble ``master_seed``."""
    geology_stream, _ = _streams(master_seed, index)
    return int(geology_stream.generate_state(1, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class Scenario:
    """One drawn scenario: the geology (``seed`` and parameters), injection rate and well cells."""

    space: ScenarioSpace = field(repr=False)
    index: int
    seed: int
    geology_params: GeologyParams
    rate_m3_per_day: float
    injector_zx: tuple[int, int]
    producer_zx: tuple[int, int]

    @property
    def config(self) -> SimulationConfig:
        return replace(
            self.space.simulation,
            rate_m3_per_day=self.rate_m3_per_day,
            injector_zx=self.injector_zx,
            producer_zx=self.producer_zx,
        )

    @property
    def drawn_geology(self) -> dict[str, float]:
        """The geology parameters drawn for this sample, by name."""
        return {name: getattr(self.geology_params, name) for name in self.space.drawn_geology_names}

    def permeability_md(self) -> np.ndarray:
        """Permeability in mD, float64 [z, x]."""
        return permeability(self.space.geology, self.space.grid, self.geology_params, self.seed)

    def porosity(self) -> np.ndarray:
        """Porosity field, float64 [z, x]."""
        return np.full(self.space.grid.shape, self.space.porosity)


def sample_scenario(space: ScenarioSpace, master_seed: int, index: int) -> Scenario:
    """Draw sample ``index`` of ensemble ``master_seed`` from ``space``, independently of others.

    Draw order (fixed, whatever the space): rate, injector depth quantile, producer depth quantile,
    then the ranged geology parameters by name.
    """
    if not isinstance(space, ScenarioSpace):
        raise TypeError(f"space must be a ScenarioSpace, got {type(space).__name__}")
    seed = sample_seed(master_seed, index)
    _, rng = _streams(master_seed, index)
    rate = float(rng.uniform(*space.rate_m3_per_day_range))
    quantiles = rng.uniform(size=2)
    params = replace(
        space.geology_params,
        **{name: float(rng.uniform(low, high)) for name, low, high in space.geology_ranges},
    )
    columns = (space.injector_column, space.producer_column)
    grid = space.grid
    if space.geology == "channel":
        mask = channel_mask(grid, params, seed)
        rows = []
        for q, col in zip(quantiles, columns, strict=True):
            cells = np.flatnonzero(mask[:, col])  # never empty: the channel keeps a minimum thickness
            rows.append(int(cells[int(q * cells.size)]))
    else:
        low, high = space.well_depth_range_m
        rows = [min(int((low + q * (high - low)) // grid.dz_m), grid.nz - 1) for q in quantiles]
    return Scenario(
        space=space,
        index=int(index),
        seed=seed,
        geology_params=params,
        rate_m3_per_day=rate,
        injector_zx=(rows[0], columns[0]),
        producer_zx=(rows[1], columns[1]),
    )


def run_scenario(
    scenario: Scenario, record_pressure: bool = False
) -> tuple[np.ndarray, np.ndarray, SimulationResult]:
    """Build the rock of ``scenario`` and simulate it: (permeability mD, porosity, result).

    Pressure at report times costs extra solves, so it is recorded only when asked for.
    """
    k_md, phi = scenario.permeability_md(), scenario.porosity()
    return k_md, phi, simulate(k_md, phi, scenario.config, record_pressure=record_pressure)
