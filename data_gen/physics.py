"""Incompressible, immiscible two-phase (CO2 / brine) flow in a 2-D vertical section.

Sequential scheme: a two-point-flux pressure solve (harmonic transmissibilities, phase-potential
upwinding, gravity along +z) gives the total volumetric flux on every face; the CO2 saturation is then
advanced explicitly with CFL-limited substeps, each face flux written in fractional-flow form with the
phase-potential upwinding of Brenier & Jaffre (1991) so that counter-current buoyant flow is upwinded
per phase. With the total flux held fixed the brine flux is ``v_T - F_g``, so the volume of both
phases is conserved to round-off. The pressure is re-solved whenever the saturation has moved by
``pressure_update_ds`` since the last solve, and at every report time.

Units: SI inside; permeability in mD and rates in m^3/day at the API; days for time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from data_gen.fluids import CP_TO_PA_S, FluidProperties
from data_gen.grid import Grid

MD_TO_M2 = 9.869233e-16
SECONDS_PER_DAY = 86400.0
_PCG_MAX_ITER = 12
_MOBILITY_FLOOR = 1e-9
# Explicit steps one simulation may take. The canonical 64 x 64 case needs ~50 steps at 150 m^3/day
# and ~14 000 at the largest rate a scenario space allows; the budget is far above that, but turns a
# runaway (absurd rate, degenerate rock) into a clear failure instead of a hang.
DEFAULT_MAX_STEPS = 1_000_000


class StepBudgetExceeded(RuntimeError):
    """A simulation needed more explicit steps than ``SimulationConfig.max_steps`` allows."""


def default_report_times_days() -> tuple[float, ...]:
    """51 report times every 20 days, 0 ... 1000 d."""
    return tuple(float(t) for t in np.arange(0.0, 1000.0 + 1e-9, 20.0))


@dataclass(frozen=True)
class SimulationConfig:
    """Everything but the rock fields. Well cells are ``(z, x)``; ``None`` switches a well off.

    The injector injects pure CO2 at ``rate_m3_per_day`` (reservoir conditions, whole cell thickness
    ``grid.dy_m``). The producer is held at ``producer_pressure_pa`` (default: hydrostatic brine pressure
    at its cell) and produces by upstream (cell) mobility through a Peaceman well index for a well along
    y of radius ``well_radius_m``. ``top_depth_m`` and ``surface_pressure_pa`` set the absolute pressure
    level only (the flow is incompressible). ``max_steps`` bounds the explicit transport steps of one
    run (the CFL step shrinks as the rate grows): beyond it ``simulate`` raises ``StepBudgetExceeded``.
    """

    grid: Grid = field(default_factory=Grid)
    fluids: FluidProperties = field(default_factory=FluidProperties)
    rate_m3_per_day: float = 100.0
    injector_zx: tuple[int, int] | None = (32, 3)
    producer_zx: tuple[int, int] | None = (32, 62)
    producer_pressure_pa: float | None = None
    well_radius_m: float = 0.1
    top_depth_m: float = 1000.0
    surface_pressure_pa: float = 101325.0
    report_times_days: tuple[float, ...] = field(default_factory=default_report_times_days)
    cfl: float = 0.9
    pressure_update_ds: float = 0.05
    max_steps: int = DEFAULT_MAX_STEPS

    def __post_init__(self) -> None:
        if isinstance(self.max_steps, bool) or not isinstance(self.max_steps, (int, np.integer)):
            raise TypeError(f"max_steps must be an integer number of steps, got {self.max_steps!r}")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps!r}")
        object.__setattr__(self, "max_steps", int(self.max_steps))
        rate = self.rate_m3_per_day
        if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, float, np.integer, np.floating)):
            raise TypeError(f"rate_m3_per_day must be a number (m^3/day), got {type(rate).__name__} {rate!r}")
        object.__setattr__(self, "rate_m3_per_day", float(rate))
        times = np.asarray(self.report_times_days, dtype=float)
        if times.ndim != 1 or times.size == 0 or not np.all(np.isfinite(times)):
            raise ValueError(f"report_times_days must be a non-empty 1-D list of finite days, got {times}")
        if times[0] < 0 or np.any(np.diff(times) <= 0):
            raise ValueError(
                "report_times_days must be >= 0 and strictly increasing, got "
                f"{np.array2string(times, threshold=8)}"
            )
        object.__setattr__(self, "report_times_days", tuple(float(t) for t in times))
        for name in ("injector_zx", "producer_zx"):
            cell = getattr(self, name)
            if cell is not None:
                object.__setattr__(self, name, self.grid.check_cell(cell, name))
        if self.injector_zx is not None:
            if not np.isfinite(self.rate_m3_per_day) or self.rate_m3_per_day <= 0:
                raise ValueError(f"rate_m3_per_day must be a finite rate > 0, got {self.rate_m3_per_day!r}")
            if self.producer_zx is None:
                raise ValueError(
                    "an injector needs a producer: the fluids are incompressible and the section is closed"
                )
            if self.injector_zx == self.producer_zx:
                raise ValueError(f"injector and producer are on the same cell {self.injector_zx}")
        if not 0 < self.cfl <= 1:
            raise ValueError(f"cfl must be in (0, 1], got {self.cfl!r}")
        if not 0 < self.pressure_update_ds <= 1:
            raise ValueError(f"pressure_update_ds must be in (0, 1], got {self.pressure_update_ds!r}")
        if not self.well_radius_m > 0:
            raise ValueError(f"well_radius_m must be > 0, got {self.well_radius_m!r}")

    def to_dict(self) -> dict:
        """JSON-serialisable form (nested dicts of plain numbers and lists)."""
        return json_ready(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> SimulationConfig:
        data = dict(data)
        data["grid"] = Grid(**data["grid"])
        data["fluids"] = FluidProperties(**data["fluids"])
        for name in ("injector_zx", "producer_zx"):
            if data.get(name) is not None:
                data[name] = tuple(data[name])
        data["report_times_days"] = tuple(data["report_times_days"])
        return cls(**data)


def json_ready(value):
    """Tuples to lists and numpy scalars to Python numbers, recursively."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@dataclass(frozen=True)
class SimulationResult:
    """Report-time snapshots: ``saturation`` (CO2) and ``pressure_pa`` are ``(time, z, x)``.

    Volumes are cumulative at report times (m^3, reservoir conditions). ``max_bound_violation`` is
    the largest amount by which a saturation left [0, 1 - S_wr] before round-off clipping.
    """

    times_days: np.ndarray
    saturation: np.ndarray
    pressure_pa: np.ndarray | None
    injected_co2_m3: np.ndarray
    produced_co2_m3: np.ndarray
    n_steps: int
    n_pressure_solves: int
    max_bound_violation: float


def hydrostatic_pressure_pa(config: SimulationConfig) -> np.ndarray:
    """Brine-hydrostatic pressure at cell centres, ``(z, x)``."""
    depth = config.top_depth_m + config.grid.z_m
    p = config.surface_pressure_pa + config.fluids.brine_density_kg_m3 * config.fluids.gravity_m_s2 * depth
    return np.repeat(p[:, None], config.grid.nx, axis=1)


def _numeric_field(name: str, value: object) -> np.ndarray:
    """``value`` as a float64 array, or a TypeError naming ``name`` for non-numeric input."""
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(
            f"{name} must be numeric (a number or an array of numbers), got {type(value).__name__} "
            f"of dtype {array.dtype}: {np.array2string(array, threshold=4) if array.ndim else value!r}"
        )
    return array.astype(float)


def validate_rock(
    permeability_md: np.ndarray, porosity: float | np.ndarray, grid: Grid
) -> tuple[np.ndarray, np.ndarray]:
    """Return float64 ``(permeability_md, porosity)`` fields of ``grid.shape`` or raise.

    ``porosity`` is one number or a field of ``grid.shape``; both must be numeric (TypeError).
    """
    k = _numeric_field("permeability_md", permeability_md)
    if k.shape != grid.shape:
        raise ValueError(f"permeability has shape {k.shape} but the grid is (nz, nx) = {grid.shape}")
    bad = ~np.isfinite(k) | (k <= 0)
    if bad.any():
        z, x = np.argwhere(bad)[0]
        raise ValueError(
            f"permeability must be finite and > 0 mD everywhere; cell (z={z}, x={x}) has {k[z, x]!r} "
            f"({int(bad.sum())} bad cells)"
        )
    phi = _numeric_field("porosity", porosity)
    if phi.shape not in ((), grid.shape):
        raise ValueError(
            f"porosity has shape {phi.shape}; allowed: one number or a field of the grid's "
            f"(nz, nx) = {grid.shape}"
        )
    phi = np.broadcast_to(phi, grid.shape)
    bad = ~np.isfinite(phi) | (phi <= 0) | (phi > 1)
    if bad.any():
        z, x = np.argwhere(bad)[0]
        raise ValueError(
            f"porosity must lie in (0, 1]; cell (z={z}, x={x}) has {phi[z, x]!r} ({int(bad.sum())} bad cells)"
        )
    return k, np.array(phi)


@dataclass(frozen=True)
class _Faces:
    """Cell pairs ``(i, j)`` of interior faces with transmissibility (m^3) and ``z_i - z_j`` (m)."""

    i: np.ndarray
    j: np.ndarray
    trans_m3: np.ndarray
    dz_m: np.ndarray

    @classmethod
    def build(cls, grid: Grid, k_m2: np.ndarray) -> _Faces:
        idx = np.arange(grid.nz * grid.nx).reshape(grid.shape)
        # x-faces: area dz*dy, distance dx; z-faces: area dx*dy, distance dz; harmonic averages.
        tx = grid.dz_m * grid.dy_m / (0.5 * grid.dx_m * (1 / k_m2[:, :-1] + 1 / k_m2[:, 1:]))
        tz = grid.dx_m * grid.dy_m / (0.5 * grid.dz_m * (1 / k_m2[:-1, :] + 1 / k_m2[1:, :]))
        return cls(
            i=np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()]),
            j=np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()]),
            trans_m3=np.concatenate([tx.ravel(), tz.ravel()]),
            dz_m=np.concatenate([np.zeros(tx.size), np.full(tz.size, -grid.dz_m)]),
        )


def _flux_derivative_bounds(fluids: FluidProperties, n: int = 2001) -> tuple[float, float]:
    """Saturation sensitivities bounding the face flux, for the explicit CFL limit.

    A face flux is ``v * f(s) + G * h(s)`` with ``f = lg/(lg+lw)`` and ``h = lg*lw/(lg+lw)``;
    returns ``max |f'|`` and ``max |h'|`` over ``0 <= s <= 1 - S_wr``.
    """
    s = np.linspace(0.0, fluids.max_co2_saturation, n)
    lw, lg = fluids.mobilities(s)
    total = lg + lw
    f, h = lg / total, lg * lw / total
    return float(np.abs(np.gradient(f, s)).max()), float(np.abs(np.gradient(h, s)).max())


class _Simulator:
    """State of one run: face geometry, wells and the current pressure / saturation."""

    def __init__(self, k_md: np.ndarray, phi: np.ndarray, config: SimulationConfig) -> None:
        grid, fl = config.grid, config.fluids
        self.config, self.fluids = config, fl
        k_m2 = k_md.ravel() * MD_TO_M2
        self.n = grid.nz * grid.nx
        self.faces = _Faces.build(grid, k_md * MD_TO_M2)
        self.pore_volume_m3 = phi.ravel() * grid.cell_volume_m3
        g, drho = fl.gravity_m_s2, fl.density_difference_kg_m3
        self.buoyancy = self.faces.trans_m3 * g * self.faces.dz_m * drho  # G: m^3 Pa per (1/(Pa s))
        self.rho_g_dz_w = fl.brine_density_kg_m3 * g * self.faces.dz_m
        self.rho_g_dz_g = fl.co2_density_kg_m3 * g * self.faces.dz_m
        self.p_hydro = hydrostatic_pressure_pa(config).ravel()
        self.q_inj = 0.0
        if config.injector_zx is not None:
            self.inj = config.injector_zx[0] * grid.nx + config.injector_zx[1]
            self.q_inj = config.rate_m3_per_day / SECONDS_PER_DAY
        self.prod = None
        if config.producer_zx is not None:
            self.prod = config.producer_zx[0] * grid.nx + config.producer_zx[1]
            r_o = 0.14 * np.hypot(grid.dx_m, grid.dz_m)  # Peaceman, square-ish cells, isotropic k
            self.well_index_m3 = 2 * np.pi * k_m2[self.prod] * grid.dy_m / np.log(r_o / config.well_radius_m)
            p_bh = config.producer_pressure_pa
            self.p_bh = self.p_hydro[self.prod] if p_bh is None else float(p_bh)
        self.dadv, self.dgrav = _flux_derivative_bounds(fl)
        self.brine_mobility_max = 1.0 / (fl.brine_viscosity_cp * CP_TO_PA_S)
        self.p = self.p_hydro.copy()
        self._lu = None
        self.v_total, self.well_rate, self.stable_dt_s = None, 0.0, np.inf  # set by solve_pressure
        self.max_bound_violation = 0.0

    # -- pressure ------------------------------------------------------------------------------
    def _upwind_mobilities(self, s: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Brine and CO2 face mobilities upwinded by the phase-potential differences of ``p``."""
        f = self.faces
        lam_w, lam_g = self.fluids.mobilities(s)
        dp = p[f.i] - p[f.j]
        return (
            lam_w[np.where(dp - self.rho_g_dz_w >= 0, f.i, f.j)],
            lam_g[np.where(dp - self.rho_g_dz_g >= 0, f.i, f.j)],
        )

    def solve_pressure(self, s: np.ndarray) -> None:
        """Solve for ``self.p`` and the total face flux ``self.v_total`` at saturation ``s``.

        Face mobilities are upwinded by the phase potentials of the previous pressure solution
        (lagged one solve, as in IMPES; iterating to consistency changed plumes by ~3e-5 relative).
        """
        f, n = self.faces, self.n
        lw, lg = self._upwind_mobilities(s, self.p)
        # A brine-mobility floor keeps regions behind segregated faces (no upwind mobility of
        # either phase) connected, so the pressure matrix stays non-singular.
        lw = lw + _MOBILITY_FLOOR * self.brine_mobility_max
        t_tot = f.trans_m3 * (lw + lg)
        diag = np.bincount(f.i, t_tot, n) + np.bincount(f.j, t_tot, n)
        grav = f.trans_m3 * (lw * self.rho_g_dz_w + lg * self.rho_g_dz_g)
        rhs = np.bincount(f.i, grav, n) - np.bincount(f.j, grav, n)
        if self.q_inj:
            rhs[self.inj] += self.q_inj
        lam_w_cell, lam_g_cell = self.fluids.mobilities(s)
        if self.prod is not None:
            well, p_well = self.prod, self.p_bh
            c = self.well_index_m3 * (lam_w_cell[well] + lam_g_cell[well])
        else:  # closed section, no wells: fix the gauge at cell 0 with its hydrostatic pressure
            well, p_well = 0, self.p_hydro[0]
            c = f.trans_m3.max() * (lam_w_cell[0] + lam_g_cell[0])
        diag[well] += c
        rhs[well] += c * p_well
        rows = np.concatenate([np.arange(n), f.i, f.j])
        cols = np.concatenate([np.arange(n), f.j, f.i])
        a = sp.csc_matrix((np.concatenate([diag, -t_tot, -t_tot]), (rows, cols)), shape=(n, n))
        # Solve for the deviation from hydrostatic: round-off relative to the flow, not to 1e7 Pa.
        self.p = self.p_hydro + self._solve_spd(a, rhs - a @ self.p_hydro, self.p - self.p_hydro)
        # Total flux with the mobilities of this assembly, so it is divergence-free to round-off.
        dp = self.p[f.i] - self.p[f.j]
        self.v_total = f.trans_m3 * (lw * (dp - self.rho_g_dz_w) + lg * (dp - self.rho_g_dz_g))
        self.well_rate = c * (p_well - self.p[well]) if self.prod is not None else 0.0
        self.stable_dt_s = self._stable_dt_s()  # depends on the fluxes only: fixed until the next solve

    def pressure_at(self, s: np.ndarray) -> np.ndarray:
        """Pressure consistent with ``s``, leaving the transport state as it was.

        Reporting pressure must not change the saturation history, so the solver state is restored.
        """
        saved = (self.p, self.v_total, self.well_rate, self.stable_dt_s, self._lu)
        self.solve_pressure(s)
        p = self.p
        self.p, self.v_total, self.well_rate, self.stable_dt_s, self._lu = saved
        return p

    def _solve_spd(self, a: sp.csc_matrix, b: np.ndarray, x0: np.ndarray) -> np.ndarray:
        """Solve ``a x = b``: CG preconditioned by the LU factors of an earlier pressure matrix.

        Mobilities change little between solves, so a stale factorisation is an excellent
        preconditioner (a few iterations of one triangular solve each); refactorise when CG needs
        more than ``_PCG_MAX_ITER``. The relative residual 1e-10 keeps the total flux divergence-free
        far below anything the saturation can see; CO2 itself is conserved to round-off regardless.
        """
        if self._lu is not None:
            precond = spla.LinearOperator(a.shape, matvec=self._lu.solve)
            x, info = spla.cg(a, b, x0=x0, rtol=1e-10, atol=0.0, maxiter=_PCG_MAX_ITER, M=precond)
            if info == 0:
                return x
        self._lu = spla.splu(a, permc_spec="MMD_AT_PLUS_A")  # symmetric ordering: a is SPD
        return self._lu.solve(b)

    # -- transport -----------------------------------------------------------------------------
    def co2_face_flux(self, s: np.ndarray) -> np.ndarray:
        """CO2 flux i -> j (m^3/s) at fixed total flux, phase-potential upwinded (Brenier-Jaffre)."""
        f, v, grav = self.faces, self.v_total, self.buoyancy
        lam_w, lam_g = self.fluids.mobilities(s)
        # Orient each face along the total flux (along buoyancy where v = 0); the phase that buoyancy
        # pushes along that direction surely flows with it, and is upwinded there.
        forward = (v > 0) | ((v == 0) & (grav >= 0))
        up, down = np.where(forward, f.i, f.j), np.where(forward, f.j, f.i)
        co2_with_v = np.where(forward, grav, -grav) >= 0
        lg_up, lw_up = lam_g[up], lam_w[up]
        # CO2 surely along v: the brine direction is the sign of v - lg*G.
        lw_star = np.where((v - lg_up * grav >= 0) == forward, lw_up, lam_w[down])
        # Brine surely along v: the CO2 direction is the sign of v + lw*G.
        lg_star = np.where((v + lw_up * grav >= 0) == forward, lg_up, lam_g[down])
        lg_f = np.where(co2_with_v, lg_up, lg_star)
        lw_f = np.where(co2_with_v, lw_star, lw_up)
        total = lg_f + lw_f
        safe = np.where(total > 0, total, 1.0)
        return np.where(total > 0, lg_f * (v + lw_f * grav) / safe, 0.0)

    def co2_sources(self, s: np.ndarray) -> np.ndarray:
        """Well CO2 rates into cells (m^3/s): injection, and the producer's CO2 share by cell mobility."""
        q = np.zeros(self.n)
        if self.q_inj:
            q[self.inj] += self.q_inj
        if self.prod is not None and self.well_rate < 0:
            lam_w, lam_g = self.fluids.mobilities(s[self.prod])
            q[self.prod] += self.well_rate * lam_g / (lam_g + lam_w)
        return q

    def _stable_dt_s(self) -> float:
        """Largest explicit step keeping the upwind update monotone (so 0 <= S <= 1 - S_wr).

        A cell's own saturation enters the advective flux only on faces it is upwind of (outflow);
        the buoyant part can be counter-current, so it counts for both cells of a face.
        """
        f, v = self.faces, self.v_total
        advective = np.abs(v) * self.dadv
        buoyant = np.abs(self.buoyancy) * self.dgrav
        per_cell = np.bincount(np.where(v >= 0, f.i, f.j), advective, self.n)
        per_cell += np.bincount(f.i, buoyant, self.n) + np.bincount(f.j, buoyant, self.n)
        if self.prod is not None:
            per_cell[self.prod] += abs(self.well_rate) * self.dadv
        ok = per_cell > 0
        if not ok.any():
            return np.inf
        return self.config.cfl * float(np.min(self.pore_volume_m3[ok] / per_cell[ok]))

    def step(self, s: np.ndarray, dt_s: float) -> tuple[np.ndarray, float]:
        """One explicit step; returns the new saturation and the CO2 volume produced (m^3)."""
        flux = self.co2_face_flux(s)
        net_out = np.bincount(self.faces.i, flux, self.n) - np.bincount(self.faces.j, flux, self.n)
        q = self.co2_sources(s)
        produced = -dt_s * q[self.prod] if self.prod is not None else 0.0
        s_new = s + dt_s * (q - net_out) / self.pore_volume_m3
        # The scheme is monotone, so only round-off leaves the bounds: clip it, but record how much.
        s_max = self.fluids.max_co2_saturation
        self.max_bound_violation = max(self.max_bound_violation, -s_new.min(), s_new.max() - s_max)
        return np.clip(s_new, 0.0, s_max), produced


def simulate(
    permeability_md: np.ndarray,
    porosity: float | np.ndarray,
    config: SimulationConfig | None = None,
    initial_saturation: np.ndarray | None = None,
    progress: Callable[[float], None] | None = None,
    record_pressure: bool = True,
) -> SimulationResult:
    """Simulate CO2 injection; return CO2 saturation and pressure at ``config.report_times_days``.

    ``permeability_md`` and ``porosity`` (scalar or field) are ``(z, x)`` arrays on ``config.grid``.
    Raises ``StepBudgetExceeded`` after ``config.max_steps`` explicit steps.
    ``initial_saturation`` defaults to no CO2. ``progress`` is called with the simulated time in days
    after each report time. With ``record_pressure=True`` the pressure is solved at each report
    time for the output only (the saturation is the same either way); otherwise ``pressure_pa`` is None.
    """
    config = SimulationConfig() if config is None else config
    k, phi = validate_rock(permeability_md, porosity, config.grid)
    s_max = config.fluids.max_co2_saturation
    if initial_saturation is None:
        s = np.zeros(k.size)
    else:
        s = np.asarray(initial_saturation, dtype=float)
        if s.shape != config.grid.shape or np.any(~np.isfinite(s)) or s.min() < 0 or s.max() > s_max:
            raise ValueError(f"initial_saturation must be a finite {config.grid.shape} field in [0, {s_max}]")
        s = s.ravel().copy()
    sim = _Simulator(k, phi, config)
    times = np.asarray(config.report_times_days)
    nt = times.size
    sat = np.empty((nt,) + config.grid.shape)
    pres = np.empty_like(sat) if record_pressure else None
    produced = np.zeros(nt)
    t_s, produced_total, n_steps, n_solves, dt = 0.0, 0.0, 0, 0, 0.0
    s_at_solve = None  # saturation of the last pressure solve
    for k_t, t_report_s in enumerate(times * SECONDS_PER_DAY):
        while t_s < t_report_s * (1 - 1e-12):
            if n_steps >= config.max_steps:
                raise StepBudgetExceeded(
                    f"the simulation used its step budget (max_steps = {config.max_steps}) at "
                    f"{t_s / SECONDS_PER_DAY:.4g} of {times[-1]:g} days (rate "
                    f"{config.rate_m3_per_day:g} m^3/day, last step {dt / SECONDS_PER_DAY:.3g} days); "
                    "lower the injection rate or raise max_steps"
                )
            if s_at_solve is None or np.abs(s - s_at_solve).max() > config.pressure_update_ds:
                sim.solve_pressure(s)
                n_solves += 1
                s_at_solve = s
            dt = min(sim.stable_dt_s, t_report_s - t_s)
            s, dq = sim.step(s, dt)
            produced_total += dq
            t_s += dt
            n_steps += 1
        if record_pressure:
            pres[k_t] = sim.pressure_at(s).reshape(config.grid.shape)
            n_solves += 1
        sat[k_t] = s.reshape(config.grid.shape)
        produced[k_t] = produced_total
        if progress is not None:
            progress(float(times[k_t]))
    injected = sim.q_inj * times * SECONDS_PER_DAY
    return SimulationResult(times, sat, pres, injected, produced, n_steps, n_solves, sim.max_bound_violation)
