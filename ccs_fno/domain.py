"""The training distribution of a surrogate, and the check that a scenario lies inside it.

A surrogate answers confidently far outside what it was trained on (an injector placed above the
channel, Gaussian geology on a channel-trained model). ``TrainingDomain`` records what the model
saw — the training store's scenario space (``data_gen.scenarios.ScenarioSpace``: geology kind
and parameters, injection-rate range, well positions and how well depths relate to the
geology, porosity) and its grid — and is stored in ``model.pt`` by the trainer.
``TrainingDomain.check`` lists, in plain words, every way a scenario departs from it; the
surrogate's ``predict`` warns with ``OutOfDomainWarning`` and the apps show the reasons before
anyone runs the simulator. For a batch, ``DomainReport.reasons`` groups them: one line per kind
of reason with how many samples and which (``per_sample`` keeps each sample's own reasons).

What counts as outside (per sample):

* grid: another resolution than the training one (the model still predicts, zero-shot);
* injection rate outside the space's rate range (m^3/day, reservoir conditions);
* porosity other than the space's constant porosity;
* a well in another column than the training wells (to within one training cell);
* channel geology: a field that is not two-valued (channel/background mD, within 10 % in
  ln k: another geology kind), or a well completed outside the channel (training wells were
  all inside it);
* Gaussian geology: a geometric mean outside the drawn range, a ln-k spread far from the
  trained one, or a well depth outside the drawn depth range.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from data_gen.geology import ChannelParams, GaussianParams
from data_gen.scenarios import ScenarioSpace

LN_TOLERANCE = 0.1  # |ln k - ln k_facies| below this counts as that facies (about 10 %)
TWO_VALUED_FRACTION = 0.98  # share of cells a channel field has at its two facies values
RATE_TOLERANCE = 1e-6  # relative slack on the rate range (round-off of stored rates)

_Reason = tuple[str, str]  # a sample's reason in full, and its kind (the same without its numbers)


class OutOfDomainWarning(UserWarning):
    """A prediction was asked for a scenario outside the surrogate's training distribution."""


@dataclass(frozen=True)
class DomainReport:
    """The outcome of ``TrainingDomain.check``: the reasons, per sample (empty: inside).

    ``per_sample[i]`` holds sample ``i``'s reasons in full (with its own numbers); ``kinds[i]``
    the same reasons in a form that does not depend on the sample (what is wrong, not by how
    much), by which a batch's reasons are grouped. Without ``kinds`` the full texts group.
    """

    per_sample: tuple[tuple[str, ...], ...]
    kinds: tuple[tuple[str, ...], ...] | None = None

    @property
    def ok(self) -> bool:
        """True when every sample lies inside the training distribution."""
        return not any(self.per_sample)

    @property
    def inside(self) -> np.ndarray:
        """Per sample: True when inside."""
        return np.array([not reasons for reasons in self.per_sample], dtype=bool)

    @property
    def samples_by_reason(self) -> dict[str, tuple[int, ...]]:
        """Each distinct kind of reason and the samples it applies to, most samples first."""
        kinds = self.per_sample if self.kinds is None else self.kinds
        groups: dict[str, list[int]] = {}
        for i, sample in enumerate(kinds):
            for kind in sample:
                indices = groups.setdefault(kind, [])
                if not indices or indices[-1] != i:
                    indices.append(i)
        # sorted is stable: equal counts keep the order of first appearance
        return {kind: tuple(ix) for kind, ix in sorted(groups.items(), key=lambda kv: -len(kv[1]))}

    @property
    def reasons(self) -> list[str]:
        """The reasons in plain words.

        A single scenario: every reason in full. A batch: one line per kind of reason with how
        many samples and which (at most ``SHOWN_SAMPLES`` indices), most samples first; each
        sample's own reasons are in ``per_sample``.
        """
        n = len(self.per_sample)
        if n == 1:
            return list(dict.fromkeys(self.per_sample[0]))
        return [
            f"{kind}: {_count(len(indices), n)} ({_indices(indices)})"
            if len(indices) < n
            else f"{kind}: {_count(n, n)}"
            for kind, indices in self.samples_by_reason.items()
        ]

    def __str__(self) -> str:
        if self.ok:
            return "inside the training distribution"
        n = len(self.per_sample)
        where = "" if n == 1 else f" in {_count(int((~self.inside).sum()), n)}"
        return f"outside the training distribution{where}: " + "; ".join(self.reasons)


SHOWN_SAMPLES = 8  # sample indices a batch's grouped reason lists before "..."


def _count(k: int, n: int) -> str:
    return f"all {n} samples" if k == n else f"{k} of {n} samples"


def _indices(indices: Sequence[int]) -> str:
    """``0, 3, 5`` — or, for more than ``SHOWN_SAMPLES``, the first ones, ``...`` and the last."""
    if len(indices) <= SHOWN_SAMPLES:
        return ", ".join(map(str, indices))
    return ", ".join(map(str, indices[: SHOWN_SAMPLES - 1])) + f", ..., {indices[-1]}"


def _facies(ln_k: np.ndarray, md: float) -> np.ndarray:
    return np.abs(ln_k - math.log(md)) < LN_TOLERANCE


@dataclass(frozen=True)
class TrainingDomain:
    """What a surrogate was trained on: the training store's scenario space (and its grid)."""

    space: ScenarioSpace

    @classmethod
    def from_store(cls, path: str | os.PathLike) -> TrainingDomain:
        """The domain of the store at ``path`` (its recorded scenario space)."""
        from data_gen.store import read_config

        return cls(read_config(str(path)).space)

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingDomain:
        return cls(ScenarioSpace.from_dict(data["space"]))

    def describe(self) -> str:
        """One paragraph a person can read: what the model was trained on."""
        s, g = self.space, self.space.grid
        low, high = s.rate_m3_per_day_range
        text = (
            f"{s.geology} geology on a {g.nz}x{g.nx} grid of {g.dz_m:g} m x {g.dx_m:g} m cells, "
            f"injection {low:g}-{high:g} m^3/day, injector at x = {s.injector_x_m:g} m, "
            f"producer at x = {s.producer_x_m:g} m, porosity {s.porosity:g}"
        )
        params = s.geology_params
        if isinstance(params, ChannelParams):
            text += (
                f"; {params.channel_md:g} mD channel in {params.background_md:g} mD background, "
                "wells completed inside the channel"
            )
        else:
            text += "; " + ", ".join(f"{n} {lo:g}-{hi:g}" for n, lo, hi in s.geology_ranges)
            depth_low, depth_high = s.well_depth_range_m
            text += f", well depths {depth_low:g}-{depth_high:g} m"
        return text

    def check(
        self,
        permeability_md: np.ndarray,
        rate_m3_per_day: Sequence[float] | np.ndarray,
        injector_zx: np.ndarray,
        producer_zx: np.ndarray,
        porosity: np.ndarray,
    ) -> DomainReport:
        """Reasons each sample lies outside the domain.

        Arrays as ``Surrogate.predict`` validates them: permeability (n, z, x) in mD, rate (n,)
        in m^3/day, well cells (n, 2) as (z, x) indices of the field's grid, porosity (n, z, x).
        The field's grid is the training section at the field's resolution.
        """
        k = np.asarray(permeability_md, dtype=np.float64)
        n, nz, nx = k.shape
        rate = np.broadcast_to(np.asarray(rate_m3_per_day, dtype=np.float64), (n,))
        injector = np.broadcast_to(np.asarray(injector_zx), (n, 2))
        producer = np.broadcast_to(np.asarray(producer_zx), (n, 2))
        phi = np.broadcast_to(np.asarray(porosity, dtype=np.float64), (n, nz, nx))
        s, g = self.space, self.space.grid
        dx_m, dz_m = g.nx * g.dx_m / nx, g.nz * g.dz_m / nz  # the field's cells
        ln_k = np.log(k)
        out = []
        for i in range(n):
            reasons: list[_Reason] = []  # (the sample's text, its kind: the text without numbers)
            if (nz, nx) != (g.nz, g.nx):
                text = (
                    f"the field has {nz}x{nx} cells; the model was trained at {g.nz}x{g.nx} "
                    "(a zero-shot resolution change)"
                )
                reasons.append((text, text))
            low, high = s.rate_m3_per_day_range
            if not low * (1 - RATE_TOLERANCE) <= rate[i] <= high * (1 + RATE_TOLERANCE):
                reasons.append(
                    (
                        f"injection rate {rate[i]:.4g} m^3/day lies outside the trained range "
                        f"{low:g}-{high:g} m^3/day",
                        f"injection rate outside the trained range {low:g}-{high:g} m^3/day",
                    )
                )
            if np.max(np.abs(phi[i] - s.porosity)) > 1e-6:
                reasons.append(
                    (
                        f"porosity {phi[i].min():.3g}-{phi[i].max():.3g}; the model was trained on a "
                        f"constant {s.porosity:g}",
                        f"porosity other than the constant {s.porosity:g} the model was trained on",
                    )
                )
            for name, cells, trained_x in (
                ("injector", injector[i], s.injector_x_m),
                ("producer", producer[i], s.producer_x_m),
            ):
                x_m = (int(cells[1]) + 0.5) * dx_m
                if abs(x_m - trained_x) > g.dx_m:
                    reasons.append(
                        (
                            f"the {name} is at x = {x_m:g} m; the model was trained with the {name} "
                            f"at x = {trained_x:g} m",
                            f"the {name} is not at x = {trained_x:g} m, where the model was trained "
                            f"with the {name}",
                        )
                    )
            reasons += self._geology_reasons(ln_k[i], injector[i], producer[i], dz_m)
            out.append(reasons)
        return DomainReport(
            tuple(tuple(text for text, _ in r) for r in out),
            tuple(tuple(kind for _, kind in r) for r in out),
        )

    def _geology_reasons(
        self, ln_k: np.ndarray, injector: np.ndarray, producer: np.ndarray, dz_m: float
    ) -> list[_Reason]:
        params = self.space.geology_params
        reasons: list[_Reason] = []
        if isinstance(params, ChannelParams):
            channel = _facies(ln_k, params.channel_md)
            background = _facies(ln_k, params.background_md)
            share = float((channel | background).mean())
            if share < TWO_VALUED_FRACTION:
                values = (
                    f"the channel ({params.channel_md:g} mD) or background "
                    f"({params.background_md:g} mD) value the model was trained on"
                )
                return [
                    (
                        f"the permeability is not channel geology: only {100 * share:.0f} % of cells "
                        f"are at {values}",
                        "the permeability is not channel geology (the field is not two-valued at "
                        f"the trained {params.channel_md:g} mD channel / {params.background_md:g} mD "
                        "background)",
                    )
                ]
            for name, (z, x) in (("injector", injector), ("producer", producer)):
                if not channel[z, x]:
                    reasons.append(
                        (
                            f"the {name} (depth {(z + 0.5) * dz_m:g} m) is completed outside the "
                            f"channel (k = {math.exp(ln_k[z, x]):.3g} mD); training wells were all "
                            "inside the channel",
                            f"the {name} is completed outside the channel; training wells were all "
                            "inside the channel",
                        )
                    )
            return reasons
        assert isinstance(params, GaussianParams)
        ranges = {name: (lo, hi) for name, lo, hi in self.space.geology_ranges}
        low, high = ranges.get("geometric_mean_md", (params.geometric_mean_md,) * 2)
        mean = math.exp(float(ln_k.mean()))
        if not low / 1.25 <= mean <= high * 1.25:  # the sample mean scatters about the drawn one
            reasons.append(
                (
                    f"the geometric mean permeability is {mean:.3g} mD; the model was trained on "
                    f"{low:g}-{high:g} mD",
                    f"the geometric mean permeability lies outside the trained {low:g}-{high:g} mD",
                )
            )
        spread, trained = float(ln_k.std()), math.sqrt(params.log_variance)
        if not trained / 3 <= spread <= max(trained * 3, LN_TOLERANCE):
            reasons.append(
                (
                    f"the ln-permeability spread is {spread:.2g}; the model was trained on about "
                    f"{trained:.2g}",
                    f"the ln-permeability spread is far from the trained {trained:.2g}",
                )
            )
        depth_low, depth_high = self.space.well_depth_range_m
        for name, (z, _) in (("injector", injector), ("producer", producer)):
            depth = (z + 0.5) * dz_m
            if not depth_low - dz_m <= depth <= depth_high + dz_m:
                reasons.append(
                    (
                        f"the {name} depth {depth:g} m lies outside the trained "
                        f"{depth_low:g}-{depth_high:g} m",
                        f"the {name} depth lies outside the trained {depth_low:g}-{depth_high:g} m",
                    )
                )
        return reasons
