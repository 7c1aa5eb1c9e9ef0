"""Permeability fields in mD for a 2-D vertical section: sinuous channels and log-normal GRFs.

Every field is a float64 array of shape ``grid.shape``, indexed ``[z, x]`` with z = 0 at the top,
and is reproducible bit for bit from a non-negative integer seed (numpy ``SeedSequence``; no
global RNG state is touched). Gaussian fields are GSTools' own; the cached path of the interactive
apps (``cached=True``) sums GSTools' modes separably on the grid, equal to round-off and ~30 times
faster (see ``unit_log_field``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

import gstools as gs
import numpy as np

from data_gen.grid import Grid

GEOLOGY_KINDS = ("channel", "gaussian")
GAUSSIAN_MODELS = ("gaussian", "exponential", "matern")

_REFERENCE_SECTION_M = 960.0  # width and depth of the default grid, for which defaults are set
_GP_JITTER = 1e-6  # relative diagonal jitter: adds white noise of std 1e-3 * boundary_std_m
_RANDMETH_MODES = 1000  # enough Fourier modes for a near-Gaussian marginal (GSTools default)
_MATERN_NU_RANGE = (0.2, 30.0)  # what GSTools accepts


def _number(owner: str, name: str, value: Any, lower: float | None, strict: bool) -> float:
    """``value`` as a float, or raise naming it if it is not finite or not above ``lower``."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}.{name} must be a real number, got {value!r}") from None
    if not math.isfinite(v) or (lower is not None and (v <= lower if strict else v < lower)):
        bound = "" if lower is None else f" {'>' if strict else '>='} {lower:g}"
        raise ValueError(f"{owner}.{name} must be a finite number{bound}, got {value!r}")
    return v


def _validate(obj: Any, bounds: Mapping[str, tuple[float | None, bool]]) -> None:
    """Check and normalise (to float, or to a (low, high) tuple of floats) each field in bounds."""
    owner = type(obj).__name__
    for name, (lower, strict) in bounds.items():
        value = getattr(obj, name)
        if name.endswith("_range_m"):
            if isinstance(value, (str, bytes)) or np.ndim(value) != 1 or len(value) != 2:
                raise ValueError(f"{owner}.{name} must be a (low, high) pair in m, got {value!r}")
            low, high = (_number(owner, f"{name}[{i}]", v, lower, strict) for i, v in enumerate(value))
            if low > high:
                raise ValueError(f"{owner}.{name} must be ordered (low <= high), got {value!r}")
            object.__setattr__(obj, name, (low, high))
        else:
            object.__setattr__(obj, name, _number(owner, name, value, lower, strict))


@dataclass(frozen=True)
class ChannelParams:
    """A sinuous channel of ``channel_md`` in a ``background_md`` background (FNO4CO2 style).

    Permeabilities in mD, lengths in m; ``*_range_m`` are (low, high) bounds of uniform draws.
    The centre line is ``z_c(x) = z0 + A sin(2 pi x / wavelength + phase)`` with z0 drawn from
    ``centre_depth_range_m``, A from ``amplitude_range_m``, the wavelength from
    ``wavelength_range_m`` and the phase from [0, 2 pi). Top and bottom are
    ``z_c -/+ thickness_m / 2``, each plus an independent zero-mean Gaussian process over x with
    covariance ``boundary_std_m**2 * exp(-d**2 / (2 * boundary_len_scale_m**2))`` at lag d.
    Every column keeps at least ``min_thickness_m`` of channel, rounded up to whole cells.
    Defaults suit the 960 m x 960 m default section; ``default_params("channel", grid)`` scales
    them to another grid.
    """

    channel_md: float = 120.0
    background_md: float = 20.0
    thickness_m: float = 120.0
    centre_depth_range_m: tuple[float, float] = (300.0, 660.0)
    amplitude_range_m: tuple[float, float] = (15.0, 90.0)
    wavelength_range_m: tuple[float, float] = (480.0, 1440.0)
    boundary_std_m: float = 10.0
    boundary_len_scale_m: float = 150.0
    min_thickness_m: float = 30.0

    def __post_init__(self) -> None:
        positive, non_negative = (0.0, True), (0.0, False)
        _validate(
            self,
            {
                "channel_md": positive,
                "background_md": positive,
                "thickness_m": positive,
                "centre_depth_range_m": non_negative,
                "amplitude_range_m": non_negative,
                "wavelength_range_m": positive,
                "boundary_std_m": non_negative,
                "boundary_len_scale_m": positive,
                "min_thickness_m": positive,
            },
        )
        if self.min_thickness_m > self.thickness_m:
            raise ValueError(
                f"ChannelParams.min_thickness_m ({self.min_thickness_m:g} m) must not exceed "
                f"thickness_m ({self.thickness_m:g} m)"
            )


@dataclass(frozen=True)
class GaussianParams:
    """Log-normal permeability ``k = geometric_mean_md * exp(Y)`` in mD.

    Y is a zero-mean Gaussian random field of variance ``log_variance`` (of ln k) with the GSTools
    covariance ``model`` ("gaussian", "exponential" or "matern" with smoothness ``nu``) and GSTools'
    length-scale convention: ``len_scale_m`` (m) along the main axis, ``anisotropy`` times that
    across it (e.g. 0.25 for layered rock). For "gaussian", corr(r) = exp(-pi/4 (r/len_scale)^2).
    The main axis is rotated ``angle_deg`` from +x towards +z, i.e. positive angles dip downward
    to the right because z is depth.
    """

    model: str = "gaussian"
    len_scale_m: float = 240.0
    anisotropy: float = 0.25
    angle_deg: float = 0.0
    geometric_mean_md: float = 50.0
    log_variance: float = 1.0
    nu: float = 1.5

    def __post_init__(self) -> None:
        if self.model not in GAUSSIAN_MODELS:
            raise ValueError(f"GaussianParams.model {self.model!r} is unknown; allowed: {GAUSSIAN_MODELS}")
        positive = (0.0, True)
        _validate(
            self,
            {
                "len_scale_m": positive,
                "anisotropy": positive,
                "angle_deg": (None, False),
                "geometric_mean_md": positive,
                "log_variance": (0.0, False),
                "nu": positive,
            },
        )
        low, high = _MATERN_NU_RANGE
        if not low <= self.nu <= high:
            raise ValueError(f"GaussianParams.nu must be in [{low:g}, {high:g}], got {self.nu!r}")


GeologyParams = ChannelParams | GaussianParams
_PARAMS_TYPES: dict[str, type] = {"channel": ChannelParams, "gaussian": GaussianParams}


def _check_params(params: Any, expected: type | tuple[type, ...]) -> None:
    if not isinstance(params, expected):
        types = expected if isinstance(expected, tuple) else (expected,)
        names = " or ".join(t.__name__ for t in types)
        raise TypeError(f"expected {names} params, got {type(params).__name__}")


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be a non-negative integer, got {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _se_gp(x_m: np.ndarray, std_m: float, len_scale_m: float, rng: np.random.Generator, n: int):
    """``n`` independent zero-mean squared-exponential GP draws on ``x_m``, shape (n, nx)."""
    lag = (x_m[:, None] - x_m[None, :]) / len_scale_m
    # The SE kernel is numerically singular on a fine grid; a tiny jitter lets Cholesky succeed.
    cov = std_m**2 * (np.exp(-0.5 * lag**2) + _GP_JITTER * np.eye(x_m.size))
    return rng.standard_normal((n, x_m.size)) @ np.linalg.cholesky(cov).T


def channel_boundaries(grid: Grid, params: ChannelParams, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Depths in m of the channel's top and bottom at each cell-centre x, each of shape (nx,)."""
    _check_params(params, ChannelParams)
    rng = np.random.default_rng(_check_seed(seed))
    depth_m = grid.nz * grid.dz_m
    if params.thickness_m > depth_m or params.centre_depth_range_m[1] > depth_m:
        raise ValueError(
            f"ChannelParams (thickness_m={params.thickness_m:g}, centre_depth_range_m="
            f"{params.centre_depth_range_m}) do not fit a section {depth_m:g} m deep; "
            "use default_params('channel', grid) or smaller lengths"
        )
    z0 = rng.uniform(*params.centre_depth_range_m)
    amplitude = rng.uniform(*params.amplitude_range_m)
    wavelength = rng.uniform(*params.wavelength_range_m)
    phase = rng.uniform(0.0, 2.0 * np.pi)
    gp_top, gp_bottom = _se_gp(grid.x_m, params.boundary_std_m, params.boundary_len_scale_m, rng, 2)
    centre = z0 + amplitude * np.sin(2.0 * np.pi * grid.x_m / wavelength + phase)
    top = centre - 0.5 * params.thickness_m + gp_top
    bottom = centre + 0.5 * params.thickness_m + gp_bottom
    # Whole cells (plus a hair against round-off), so the cell-centre mask honours the minimum too.
    min_span = math.ceil(params.min_thickness_m / grid.dz_m - 1e-9) * grid.dz_m + 1e-6 * grid.dz_m
    middle, half = 0.5 * (top + bottom), 0.5 * np.maximum(bottom - top, min_span)
    top, bottom = middle - half, middle + half
    # Shift columns that stick out of the section rather than clip them: they keep their thickness.
    shift = np.maximum(0.0, -top) - np.maximum(0.0, bottom - depth_m)
    return np.clip(top + shift, 0.0, depth_m), np.clip(bottom + shift, 0.0, depth_m)


def channel_mask(grid: Grid, params: ChannelParams, seed: int) -> np.ndarray:
    """Boolean [z, x] mask of the cells whose centre depth lies within the channel."""
    top, bottom = channel_boundaries(grid, params, seed)
    z = grid.z_m[:, None]
    return (z >= top[None, :]) & (z <= bottom[None, :])


def channel_permeability(grid: Grid, params: ChannelParams, seed: int) -> np.ndarray:
    """Channel permeability field in mD, float64 [z, x]."""
    mask = channel_mask(grid, params, seed)
    return np.where(mask, params.channel_md, params.background_md)


class _Matern2D(gs.Matern):
    """GSTools' Matern with the exact quantile of its 2-D radial spectral distribution.

    GSTools has none for Matern and falls back to MCMC sampling of the spectrum, which costs
    ~0.25 s per field. The 2-D spectral density is proportional to (1 + (k l)^2 / nu)^-(nu + 1),
    so P(|k| <= r) = 1 - (1 + (r l)^2 / nu)^-nu, inverted below (k in rad/m, l the length scale).
    """

    def spectral_rad_ppf(self, u: np.ndarray) -> np.ndarray:
        tail = -np.log1p(-np.asarray(u, dtype=np.double))
        # Above nu = 20 GSTools' correlation is the Gaussian limit, whose quantile is sqrt(tail).
        if self.nu <= 20.0:
            tail = self.nu * np.expm1(tail / self.nu)
        return np.sqrt(tail) / self.len_rescaled


def covariance_model(params: GaussianParams) -> gs.CovModel:
    """The GSTools model of ``Y = ln(k / geometric_mean_md)`` on positions (x, z) in m."""
    _check_params(params, GaussianParams)
    model_cls = {"gaussian": gs.Gaussian, "exponential": gs.Exponential, "matern": _Matern2D}
    extra = {"nu": params.nu} if params.model == "matern" else {}
    return model_cls[params.model](
        dim=2,
        var=params.log_variance,
        len_scale=params.len_scale_m,
        anis=params.anisotropy,
        angles=np.deg2rad(params.angle_deg),
        **extra,
    )


def _gstools_seed(seed: int) -> int:
    """GSTools seeds a RandomState (< 2**32); SeedSequence maps any non-negative int seed onto it."""
    return int(np.random.SeedSequence(_check_seed(seed)).generate_state(1)[0])


def _log_field(grid: Grid, params: GaussianParams, seed: int) -> np.ndarray:
    """Y = ln(k / geometric_mean_md), float64 [z, x], from GSTools (see gaussian_permeability)."""
    model = covariance_model(params)
    srf = gs.SRF(model, generator="RandMeth", mode_no=_RANDMETH_MODES, seed=_gstools_seed(seed))
    return srf((grid.x_m, grid.z_m), mesh_type="structured").T  # GSTools gives (nx, nz)


def _has_separable_sum(model: gs.CovModel) -> bool:
    """Whether ``_separable_log_field`` reproduces GSTools' RandMeth field of ``model``.

    It needs GSTools' inversion sampling of the spectrum (a ppf; otherwise GSTools samples by
    MCMC), a linear ``isometrize`` (not lat-lon), no nugget (GSTools draws it per cell after the
    modes) and a non-zero variance (GSTools then draws no wave vectors).
    """
    return (
        model.has_ppf
        and model.field_dim == 2
        and not model.latlon
        and model.nugget == 0.0
        and not np.isclose(model.var, 0.0)
    )


def _randmeth_modes(model: gs.CovModel, gs_seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GSTools' RandMeth modes of ``model``: amplitudes z_1, z_2 (N,) and wave vectors k (2, N).

    The draws of ``gstools.field.generator.RandMeth.reset_seed`` (GSTools 1.7, "auto" sampling of
    a model with a ppf), through GSTools' public RNG in the same order: ``RNG.random`` hands out
    a new RandomState, seeded from the master RNG, on every access.
    """
    rng = gs.random.RNG(gs_seed)
    z_1 = rng.random.normal(size=_RANDMETH_MODES)
    z_2 = rng.random.normal(size=_RANDMETH_MODES)
    directions = rng.sample_sphere(model.dim, _RANDMETH_MODES)
    pdf, cdf, ppf = model.dist_func
    radii = rng.sample_dist(size=_RANDMETH_MODES, pdf=pdf, cdf=cdf, ppf=ppf, a=0)
    return z_1, z_2, radii * directions


def _separable_log_field(grid: Grid, model: gs.CovModel, gs_seed: int) -> np.ndarray:
    """GSTools' RandMeth field of ``model`` on the grid, float64 [z, x], summed separably.

    GSTools sums ``sqrt(var / N) sum_i z_1i cos(k_i . p) + z_2i sin(k_i . p)`` over every cell,
    with ``p = model.isometrize((x, z))``, a linear map. So ``k_i . p = a_i x + b_i z`` with
    ``a_i = k_i . iso(e_x)`` and ``b_i = k_i . iso(e_z)``, and by the angle-sum formulas the sum
    over modes is two (nz x N) @ (N x nx) matrix products of cos and sin of ``b z`` and ``a x``.
    """
    z_1, z_2, k = _randmeth_modes(model, gs_seed)
    iso_x, iso_z = model.isometrize(np.eye(2)).T  # the images of unit steps along x and z
    phase_x, phase_z = np.multiply.outer(grid.x_m, iso_x @ k), np.multiply.outer(grid.z_m, iso_z @ k)
    cos_x, sin_x, cos_z, sin_z = np.cos(phase_x), np.sin(phase_x), np.cos(phase_z), np.sin(phase_z)
    # z_1 cos(ax + bz) + z_2 sin(ax + bz) = cos(bz) (z_1 cos(ax) + z_2 sin(ax))
    #                                      + sin(bz) (z_2 cos(ax) - z_1 sin(ax))
    summed = cos_z @ (z_1 * cos_x + z_2 * sin_x).T + sin_z @ (z_2 * cos_x - z_1 * sin_x).T
    return math.sqrt(model.var / _RANDMETH_MODES) * summed


def gaussian_permeability(
    grid: Grid, params: GaussianParams, seed: int, *, cached: bool = False
) -> np.ndarray:
    """Log-normal permeability field in mD, float64 [z, x].

    Uses GSTools' randomisation method (RandMeth, 1000 modes): its ensemble mean and covariance
    are exact for any model, it is not periodic (the Fourier generator would wrap the field around
    the section and truncate the spectrum), and it handles anisotropy and rotation directly.

    With ``cached=True`` the field is ``geometric_mean_md * exp(sqrt(log_variance) * U)`` from
    the cached unit-variance field U of ``unit_log_field`` (GSTools' modes summed separably): the
    same field to round-off (about 1e-14 relative for the default structure, see there), in about
    5 ms for a new correlation structure or seed instead of ~130 ms at 64 x 64, and in about a
    millisecond when only ``geometric_mean_md`` or ``log_variance`` changed (interactive apps).
    The default is GSTools' own arithmetic, bit for bit as in the data stores.
    """
    _check_params(params, GaussianParams)
    if cached:
        log_k = math.sqrt(params.log_variance) * unit_log_field(grid, params, seed)
    else:
        log_k = _log_field(grid, params, seed)
    return np.ascontiguousarray(params.geometric_mean_md * np.exp(log_k), dtype=np.float64)


def unit_log_field(grid: Grid, params: GaussianParams, seed: int) -> np.ndarray:
    """The unit-variance Gaussian random field U of ``gaussian_permeability``: its
    ``ln(k / geometric_mean_md) = sqrt(log_variance) * U``, float64 [z, x], read-only.

    U depends on the grid, the seed and the correlation structure of ``params`` (``model``,
    ``len_scale_m``, ``anisotropy``, ``angle_deg``, ``nu``), not on ``geometric_mean_md`` or
    ``log_variance``: GSTools draws the same Fourier modes for any variance and scales their sum
    by its square root. The last 32 fields are kept (a few hundred kB at 64 x 64).

    U is GSTools' RandMeth field with GSTools' own modes (drawn through its public RNG in the order
    RandMeth draws them), summed separably: on the structured grid each phase ``k_i . p`` is
    ``a_i x + b_i z``, so the 1000-mode sum is two (nz x N) @ (N x nx) matrix products of cos and
    sin of ``a x`` and ``b z`` (~5 ms instead of ~130 ms at 64 x 64). Only the rounding of the
    phases differs from GSTools' cell-by-cell sum, so the two agree to about machine epsilon times
    the largest phase in radians: ~1e-14 for the "gaussian" model and smooth Matern fields,
    1e-12 to 1e-10 for "exponential" fields (heavy-tailed spectrum, phases up to ~1e5 rad), more
    for Matern nu << 1 at short lengths. GSTools' own field moves as much when the cell
    positions move by one ulp.
    """
    _check_params(params, GaussianParams)
    structure = replace(params, geometric_mean_md=1.0, log_variance=1.0)
    return _unit_log_field(grid, structure, _check_seed(seed))


@lru_cache(maxsize=32)
def _unit_log_field(grid: Grid, structure: GaussianParams, seed: int) -> np.ndarray:
    model = covariance_model(structure)
    if _has_separable_sum(model):
        field = _separable_log_field(grid, model, _gstools_seed(seed))
    else:  # GSTools' own summation, e.g. for a model without a spectral ppf (none of ours)
        field = _log_field(grid, structure, seed)
    field = np.ascontiguousarray(field, dtype=np.float64)
    field.flags.writeable = False  # shared by every caller of the cache
    return field


def _check_kind(kind: Any) -> str:
    if kind not in GEOLOGY_KINDS:
        raise ValueError(f"unknown geology kind {kind!r}; allowed: {GEOLOGY_KINDS}")
    return kind


def default_params(kind: str, grid: Grid | None = None) -> GeologyParams:
    """Default parameters of ``kind``; with ``grid``, lengths are scaled from the 960 m section.

    Vertical lengths scale with the section depth and horizontal ones with its width, so the
    default 64 x 64 x 15 m grid gets the dataclass defaults unchanged.
    """
    params = _PARAMS_TYPES[_check_kind(kind)]()
    if grid is None:
        return params
    sz = grid.nz * grid.dz_m / _REFERENCE_SECTION_M
    sx = grid.nx * grid.dx_m / _REFERENCE_SECTION_M
    if isinstance(params, GaussianParams):
        return replace(params, len_scale_m=params.len_scale_m * sx)
    scale = {name: sz for name in ("thickness_m", "boundary_std_m", "min_thickness_m")}
    scale |= {"boundary_len_scale_m": sx, "wavelength_range_m": sx}
    scale |= {"centre_depth_range_m": sz, "amplitude_range_m": sz}
    return replace(params, **{k: np.multiply(getattr(params, k), s) for k, s in scale.items()})


def permeability(
    kind: str, grid: Grid, params: GeologyParams, seed: int, *, cached: bool = False
) -> np.ndarray:
    """Permeability field in mD, float64 [z, x], of geology ``kind`` (one of GEOLOGY_KINDS).

    ``cached``: gaussian fields from the cached unit field (see ``gaussian_permeability``).
    """
    _check_params(params, _PARAMS_TYPES[_check_kind(kind)])
    if kind == "channel":
        return channel_permeability(grid, params, seed)
    return gaussian_permeability(grid, params, seed, cached=cached)


def params_to_dict(params: GeologyParams) -> dict[str, Any]:
    """JSON-serialisable dict of ``params`` (floats, strings, lists), e.g. for Zarr attrs."""
    _check_params(params, (ChannelParams, GaussianParams))
    return {f.name: list(v) if isinstance(v := getattr(params, f.name), tuple) else v for f in fields(params)}


def params_from_dict(kind: str, d: Mapping[str, Any]) -> GeologyParams:
    """Parameters of ``kind`` rebuilt from ``params_to_dict`` output; missing keys take defaults."""
    cls = _PARAMS_TYPES[_check_kind(kind)]
    if not isinstance(d, Mapping):
        raise TypeError(f"geology params must be a mapping, got {type(d).__name__}")
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; allowed: {sorted(allowed)}")
    return cls(**d)
