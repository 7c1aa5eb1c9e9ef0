"""Uncertainty quantification of the canonical surrogate: measured, not asserted (issue 12).

    .venv/bin/python bench/bench_uq.py calibration --heldout /work/bench_data/heldout_channel.zarr \
        --ood /work/bench_data/heldout_gaussian.zarr --out docs/results/uq_calibration.txt
    .venv/bin/python bench/bench_uq.py prior --heldout /work/bench_data/heldout_channel.zarr \
        --members 200 --out docs/results/uq_prior_vs_mc.txt
    .venv/bin/python bench/bench_uq.py large --members 10000 --out docs/results/uq_prior_10000.txt
    .venv/bin/python bench/bench_uq.py posterior --heldout /work/bench_data/heldout_channel.zarr \
        --truths 20 --members 5 --iterations 12 --out docs/results/uq_posterior.txt
    .venv/bin/python bench/bench_uq.py ensemble --heldout /work/bench_data/heldout_channel.zarr \
        --runs /work/bench_data/ens_s1 /work/bench_data/ens_s2 /work/bench_data/ens_s3 \
        --out docs/results/uq_ensemble.txt

* ``calibration``: the held-out channel store (never used in training) split in calibration and
  test halves (``heldout_split``); pointwise coverage at 80 % and 90 % on the test half (all
  cells, and the "active" cells where truth or prediction is non-zero), band widths, plume-area
  band coverage, the sample-level (alpha, delta) statement, and the same bands on an
  out-of-family store (Gaussian geology).
* ``ensemble``: a deep ensemble of M trained runs (``--runs``) on the same test half: the
  uncalibrated Gaussian band mean +/- z * std (std across members, ddof 1) beside split-conformal
  bands of the ensemble mean fitted on the calibration half, unscaled (|err|) and ensemble-scaled
  (|err| / max(std, floor), ``Calibration.fit(scale=...)``): coverage and band width.
* ``prior``: members 0..N-1 of the held-out store's scenario space and master seed ARE its
  first N samples (simulator runs): the Monte Carlo reference. The same scenarios go through
  the surrogate; P(S > 0.05) maps at 1000 d and P10/P50/P90 plume areas are compared.
* ``large``: a 10,000-member prior ensemble at 64x64, streamed: wall time and peak memory.
* ``posterior``: RML posteriors (``posterior_ensemble``) for held-out truths observed by three
  monitoring wells: how often the true 1000-day plume area lies in the posterior P10-P90, and the
  posterior spread against the prior's.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from transcript import Transcript, cpu_model  # noqa: E402

from ccs_fno.data import heldout_split, read_store  # noqa: E402
from ccs_fno.plume import PLUME_THRESHOLD  # noqa: E402
from ccs_fno.surrogate import load_surrogate  # noqa: E402
from ccs_fno.uq import (  # noqa: E402
    Calibration,
    binomial_interval,
    evaluate_calibration,
    plume_curves,
    predict_store,
    prior_ensemble,
    store_ensemble,
)
from data_gen.store import read_config  # noqa: E402

LEVELS = (0.8, 0.9)


def header(out: Transcript, args: argparse.Namespace) -> None:
    out(f"$ {' '.join(sys.argv)}")
    out(f"machine: {cpu_model()}, {len(__import__('os').sched_getaffinity(0))} CPUs available")
    out(f"load (uptime): {Path('/proc/loadavg').read_text().split()[:3]}")
    if hasattr(args, "surrogate"):
        out(f"surrogate: {args.surrogate}")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def predict_quiet(surrogate, store, indices):
    """Predictions and truths; out-of-domain warnings counted, not printed per batch."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pred, truth = predict_store(surrogate, store, indices)
    return pred, truth, len(caught)


def pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def coverage_report(out, name, cal, pred, truth, summary, indices) -> None:
    """The calibration table (``evaluate_calibration``) as text, plus band sizes."""
    table = evaluate_calibration(cal, pred, truth, summary.grid, summary.injector_zx[indices])
    n = table.attrs["n_test"]
    median_area = float(np.median(plume_curves(truth[:, -1:], summary.grid, summary.injector_zx[indices])[0]))
    for level in cal.levels:
        row = {k: float(v) for k, v in table.sel(level=level).data_vars.items()}
        area_band = float(cal.area_band(level)[-1])
        out(
            f"  {name} {level:.0%}: pointwise coverage {pct(row['coverage'])} (95 % CI "
            f"{pct(row['coverage_low'])}-{pct(row['coverage_high'])}, the {n} fields as trials); plume "
            f"cells only (conditional, no guarantee) {pct(row['plume_cell_coverage'])}"
        )
        out(
            f"    band half-width at 1000 d: mean {row['band_mean']:.4f} over cells any test plume "
            f"reaches, {float(cal.band(level)[-1].mean()):.4f} over all cells"
        )
        out(
            f"    plume area at 1000 d: band +/- {area_band:.0f} m2 ({pct(area_band / median_area)} of the "
            f"median true area {median_area:.0f} m2); covered {pct(row['area_coverage'])} "
            f"(CI {pct(row['area_low'])}-{pct(row['area_high'])})"
        )
        lam = float(cal.data["field_lambda"].sel(level=level))
        out(
            f"    (alpha={1 - level:.2f}, delta={table.attrs['delta']:g}) sample-level band lambda * w "
            f"(lambda {lam:.3f}, w = pointwise band of the even calibration half): fields with "
            f">= {level:.0%} of cells inside {pct(row['field_coverage'])} (nominal >= "
            f"{pct(1 - table.attrs['delta'])}); its mean half-width at 1000 d "
            f"{float(cal.field_band(level)[-1].mean()):.4f}"
        )


def heldout_halves(out, args: argparse.Namespace):
    """The held-out store and its calibration/test halves (``heldout_split``), described."""
    summary = read_store(args.heldout)
    split = heldout_split(summary.done_indices, 0.5, args.split_seed)
    out(
        f"held-out store {summary.path}: {summary.done_indices.size} samples, master seed "
        f"{read_config(summary.path).master_seed}; heldout_split(fraction 0.5, seed {args.split_seed}): "
        f"{split['calibration'].size} calibration, {split['test'].size} test"
    )
    return summary, split


def cmd_calibration(args: argparse.Namespace) -> None:
    out = Transcript()
    header(out, args)
    surrogate = load_surrogate(args.surrogate)
    summary, split = heldout_halves(out, args)
    t0 = time.perf_counter()
    pred_c, truth_c, _ = predict_quiet(surrogate, summary, split["calibration"])
    t1 = time.perf_counter()
    cal = Calibration.fit(
        pred_c,
        truth_c,
        summary.grid,
        summary.injector_zx[split["calibration"]],
        summary.times_days,
        LEVELS,
        delta=args.delta,
        source={"store": summary.path, "samples": split["calibration"].tolist(), "surrogate": args.surrogate},
    )
    t2 = time.perf_counter()
    out(f"calibration: predict {t1 - t0:.1f} s, fit {t2 - t1:.1f} s (n = {cal.n_calibration})")
    if args.save:
        out(f"saved: {cal.save(args.save)}")
    del pred_c, truth_c
    pred, truth, _ = predict_quiet(surrogate, summary, split["test"])
    coverage_report(out, "in-family test", cal, pred, truth, summary, split["test"])
    del pred, truth
    if args.ood:
        ood = read_store(args.ood)
        pred, truth, warned = predict_quiet(surrogate, ood, ood.done_indices)
        rel = np.linalg.norm((pred - truth).reshape(len(pred), -1), axis=1) / np.linalg.norm(
            truth.reshape(len(pred), -1), axis=1
        )
        out(
            f"out-of-family store {ood.path} ({read_config(ood.path).space.geology}, "
            f"{ood.done_indices.size} samples; {warned} OutOfDomainWarning batches): "
            f"rel-L2 mean {rel.mean():.4f} (in-family test rel-L2 is ~0.06)"
        )
        coverage_report(out, "out-of-family", cal, pred, truth, ood, ood.done_indices)
    out("deep-ensemble bands: see `bench_uq.py ensemble` (docs/results/uq_ensemble.txt)")
    out(f"peak RSS {peak_rss_mb():.0f} MB; load after: {Path('/proc/loadavg').read_text().split()[:3]}")
    write(args, out)


def cmd_prior(args: argparse.Namespace) -> None:
    out = Transcript()
    header(out, args)
    surrogate = load_surrogate(args.surrogate)
    summary = read_store(args.heldout)
    config = read_config(summary.path)
    n = args.members
    t0 = time.perf_counter()
    mc = store_ensemble(summary.path, range(n))
    t_mc = time.perf_counter() - t0
    # conservative variant: calibrated on held-out samples disjoint from the N members
    rest = summary.done_indices[summary.done_indices >= n]
    pred_c, truth_c, _ = predict_quiet(surrogate, summary, rest)
    cal = Calibration.fit(
        pred_c, truth_c, summary.grid, summary.injector_zx[rest], summary.times_days, LEVELS
    )
    del pred_c, truth_c
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ens = prior_ensemble(
            surrogate,
            n,
            config.space,
            config.master_seed,
            batch_size=args.batch_size,
            calibration=cal,
            level=0.9,
        )
    t_sur = time.perf_counter() - t0
    out(
        f"N = {n} scenarios: members 0..{n - 1} of master seed {config.master_seed} "
        f"({config.space.geology}) = samples 0..{n - 1} of {summary.path}"
    )
    assert np.allclose(ens["rate_m3_per_day"], summary.rate_m3_per_day[:n]), "sampler and store disagree"
    assert np.array_equal(ens["injector_z"], summary.injector_zx[:n, 0]), "sampler and store disagree"
    p_mc = mc["exceedance_probability"].sel(threshold=0.05).isel(time=-1).values
    p_su = ens["exceedance_probability"].sel(threshold=0.05).isel(time=-1).values
    p_co = ens["exceedance_probability_conservative"].sel(threshold=0.05).isel(time=-1).values
    out(f"P(S > 0.05) at 1000 d: mean |surrogate - MC| = {np.abs(p_su - p_mc).mean():.4f} (target <= 0.05)")
    out(
        f"  max |diff| {np.abs(p_su - p_mc).max():.3f}; over cells where either is > 0: "
        f"{np.abs(p_su - p_mc)[(p_su > 0) | (p_mc > 0)].mean():.4f}"
    )
    out(
        f"  conservative (90 % band) P(S > 0.05): mean |diff| to MC {np.abs(p_co - p_mc).mean():.4f}; "
        f"cells where it is below MC: {pct((p_co < p_mc - 1e-9).mean())} "
        f"(plain surrogate: {pct((p_su < p_mc - 1e-9).mean())})"
    )
    mean_diff = np.abs(ens["mean_saturation"].isel(time=-1) - mc["mean_saturation"].isel(time=-1)).mean()
    out(f"mean saturation at 1000 d: mean |diff| {float(mean_diff):.4f}")
    for name, var in (
        ("plume area (m2)", "plume_area_quantiles_m2"),
        ("plume extent (m)", "plume_extent_quantiles_m"),
    ):
        for q in (0.1, 0.5, 0.9):
            a = float(ens[var].sel(quantile=q).isel(time=-1))
            b = float(mc[var].sel(quantile=q).isel(time=-1))
            out(
                f"  P{int(q * 100)} {name} at 1000 d: surrogate {a:.0f}, MC {b:.0f}, "
                f"rel diff {pct(abs(a - b) / b)}"
            )
    for q in (0.1, 0.5, 0.9):
        a = float(ens["plume_area_conservative_quantiles_m2"].sel(quantile=q).isel(time=-1))
        out(f"  conservative P{int(q * 100)} plume area at 1000 d: {a:.0f} m2")
    rel_curve = np.abs(ens["plume_area_quantiles_m2"] - mc["plume_area_quantiles_m2"]).isel(
        time=slice(5, None)
    )
    rel_curve = rel_curve / mc["plume_area_quantiles_m2"].isel(time=slice(5, None))
    out(f"  P10/P50/P90 plume area, 100-1000 d: max rel diff over times {pct(float(rel_curve.max()))}")
    out(
        f"wall time: surrogate ensemble {t_sur:.1f} s (sampling {ens.attrs['sampling_s']:.1f} s, predict "
        f"{ens.attrs['predict_s']:.1f} s, the rest statistics); MC store statistics {t_mc:.1f} s"
    )
    out(f"load after: {Path('/proc/loadavg').read_text().split()[:3]}")
    write(args, out)


def cmd_large(args: argparse.Namespace) -> None:
    out = Transcript()
    header(out, args)
    surrogate = load_surrogate(args.surrogate)
    rss0 = peak_rss_mb()
    t0 = time.perf_counter()
    ds = prior_ensemble(surrogate, args.members, master_seed=args.seed, batch_size=args.batch_size)
    wall = time.perf_counter() - t0
    n, t, z, x = args.members, *ds["mean_saturation"].shape
    out(
        f"{n} members at {z}x{x}, {t} report times, batch {args.batch_size}: {wall:.1f} s "
        f"({1000 * wall / n:.1f} ms/member; sampling {ds.attrs['sampling_s']:.1f} s, predict "
        f"{ds.attrs['predict_s']:.1f} s, statistics and plume curves the rest)"
    )
    out(
        f"peak RSS {peak_rss_mb():.0f} MB (after loading the surrogate: {rss0:.0f} MB); all member "
        f"fields would be {n * t * z * x * 4 / 2**30:.1f} GiB in float32"
    )
    area = ds["plume_area_quantiles_m2"].isel(time=-1).values
    out(f"P10/P50/P90 plume area at 1000 d: {area.round(0).tolist()} m2")
    out(f"load after: {Path('/proc/loadavg').read_text().split()[:3]}")
    write(args, out)


def cmd_posterior(args: argparse.Namespace) -> None:
    from ccs_fno.inversion import (
        InversionConfig,
        MonitoringWells,
        ObservationDesign,
        draw_prior,
        synthesize_observations,
        truth_from_store,
    )
    from ccs_fno.plume import plume_area_m2
    from ccs_fno.uq import posterior_ensemble

    out = Transcript()
    header(out, args)
    surrogate = load_surrogate(args.surrogate)
    summary = read_store(args.heldout)
    space = read_config(summary.path).space
    truths = heldout_split(summary.done_indices, 0.5, 0)["test"][: args.truths]
    prior = draw_prior(space, args.prior_draws, args.prior_seed)
    config = InversionConfig(parameterisation="pca", n_modes=args.modes, iterations=args.iterations)
    design = ObservationDesign(wells=MonitoringWells(), noise_std=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior_stats = prior_ensemble(surrogate, args.prior_draws, space, args.prior_seed, batch_size=64)
    q_prior = prior_stats["plume_area_quantiles_m2"].isel(time=-1).values
    out(
        f"{len(truths)} truths: held-out test-half samples {truths.tolist()}; observations: 3 monitoring "
        f"wells x {list(MonitoringWells().times_days)} d, noise 0.02; RML: {args.members} members, "
        f"pca {args.modes} modes of a {args.prior_draws}-draw prior (seed {args.prior_seed}), adam "
        f"{args.iterations} iterations"
    )
    out(
        f"prior P10/P50/P90 plume area at 1000 d: {q_prior.round(0).tolist()} m2 "
        f"(spread P90-P10 {q_prior[2] - q_prior[0]:.0f})"
    )
    inside, ratios, misfits, seconds = [], [], [], []
    for index in truths:
        truth = truth_from_store(summary.path, int(index))
        obs = synthesize_observations(truth, design, seed=1000 + int(index))
        t0 = time.perf_counter()
        post = posterior_ensemble(surrogate, obs, prior, args.members, config, seed=int(index))
        seconds.append(time.perf_counter() - t0)
        q = post["plume_area_quantiles_m2"].isel(time=-1).values
        cell = (int(truth["injector_z"]), int(truth["injector_x"]))
        true_area = float(plume_area_m2(truth["saturation"].values[-1], summary.grid, cell))
        ok = q[0] <= true_area <= q[2]
        inside.append(ok)
        ratios.append((q[2] - q[0]) / (q_prior[2] - q_prior[0]))
        misfits.append(float(np.median(post["normalised_misfit"])))
        out(
            f"  truth {index}: true area {true_area:.0f} m2, posterior P10/P50/P90 {q.round(0).tolist()} "
            f"{'inside' if ok else 'OUTSIDE'}; spread/prior {ratios[-1]:.2f}; median chi2/N "
            f"{misfits[-1]:.2f}; {seconds[-1]:.0f} s"
        )
    lo, hi = binomial_interval(int(sum(inside)), len(inside))
    out(
        f"true 1000-d plume area inside the posterior P10-P90: {sum(inside)}/{len(inside)} = "
        f"{pct(np.mean(inside))} (95 % CI {pct(lo)}-{pct(hi)}; nominal 80 %)"
    )
    out(
        f"posterior spread (P90-P10) / prior spread: median {np.median(ratios):.2f} (range "
        f"{min(ratios):.2f}-{max(ratios):.2f}); median chi2/N {np.median(misfits):.2f}; "
        f"{np.mean(seconds) / args.members:.1f} s per member"
    )
    out(f"load after: {Path('/proc/loadavg').read_text().split()[:3]}")
    write(args, out)


def rel_l2(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean over samples of ||pred - truth|| / ||truth|| (all times and cells)."""
    n = len(pred)
    err = np.linalg.norm((pred - truth).reshape(n, -1), axis=1)
    return float((err / np.linalg.norm(truth.reshape(n, -1), axis=1)).mean())


def band_row(out, name, level, pred, truth, half_width) -> None:
    """One band's pointwise coverage of ``|pred - truth| <= half_width`` on all test cells
    (Clopper-Pearson CI counting each field as one trial, as ``evaluate_calibration``), on plume
    cells, and its mean half-width at 1000 d (cells any test plume reaches; all cells)."""
    n = len(pred)
    inside = np.abs(pred - truth) <= half_width
    cov = float(inside.mean())
    low, high = binomial_interval(round(cov * n), n)
    plume = (truth > PLUME_THRESHOLD) | (pred > PLUME_THRESHOLD)
    last = np.broadcast_to(half_width, pred.shape)[:, -1]
    reached = plume[:, -1].any(axis=0)
    out(
        f"  {name} {level:.0%}: pointwise coverage {pct(cov)} (95 % CI {pct(low)}-{pct(high)}); "
        f"plume cells {pct(float(inside[plume].mean()))}; half-width at 1000 d: mean "
        f"{float(last[:, reached].mean()):.4f} over cells any test plume reaches, "
        f"{float(last.mean()):.4f} over all cells"
    )


def ensemble_predict(members, summary, indices):
    """Member predictions (M, n, T, Z, X) and truths of ``indices``; warnings counted."""
    preds, warned = [], 0
    for surrogate in members:
        pred, truth, w = predict_quiet(surrogate, summary, indices)
        preds.append(pred)
        warned += w
    return np.stack(preds), truth, warned


def cmd_ensemble(args: argparse.Namespace) -> None:
    from scipy.stats import norm

    out = Transcript()
    header(out, args)
    if len(args.runs) < 2:
        raise SystemExit(f"--runs: a deep ensemble needs at least 2 trained runs, got {len(args.runs)}")
    members = [load_surrogate(run) for run in args.runs]
    out(f"members ({len(members)}): {', '.join(args.runs)}")
    summary, split = heldout_halves(out, args)
    t0 = time.perf_counter()
    test, truth, warned = ensemble_predict(members, summary, split["test"])
    seconds = time.perf_counter() - t0
    out(f"test half predicted by {len(members)} members in {seconds:.1f} s ({warned} warnings)")
    for run, pred in zip(args.runs, test, strict=True):
        out(f"  member {run}: test-half rel-L2 {rel_l2(pred, truth):.4f}")
    mean, std = test.mean(axis=0), test.std(axis=0, ddof=1)
    del test
    out(f"  ensemble mean: test-half rel-L2 {rel_l2(mean, truth):.4f}")
    out(
        f"(a) uncalibrated deep-ensemble band: mean +/- z * std, std across the {len(members)} members "
        "(ddof 1) per cell and time, z the Gaussian quantile (no calibration data used)"
    )
    for level in LEVELS:
        z = float(norm.ppf((1 + level) / 2))
        band_row(out, f"ensemble z={z:.3f}", level, mean, truth, z * std)
    calib, truth_c, _ = ensemble_predict(members, summary, split["calibration"])
    mean_c, std_c = calib.mean(axis=0), calib.std(axis=0, ddof=1)
    del calib
    cells = summary.injector_zx[split["calibration"]]
    fit = dict(grid=summary.grid, injector_zx=cells, times_days=summary.times_days, levels=LEVELS)
    t0 = time.perf_counter()
    plain = Calibration.fit(mean_c, truth_c, **fit)
    scaled = Calibration.fit(mean_c, truth_c, scale=np.maximum(std_c, args.scale_floor), **fit)
    out(
        f"(b) split-conformal bands of the ensemble mean, fitted on the {plain.n_calibration} "
        f"calibration-half samples ({time.perf_counter() - t0:.1f} s): unscaled |err|, and "
        f"ensemble-scaled |err| / max(std, {args.scale_floor:g})"
    )
    del mean_c, std_c, truth_c
    for level in LEVELS:
        band_row(out, "conformal unscaled", level, mean, truth, plain.band(level).values)
        scale = np.maximum(std, args.scale_floor)
        band_row(out, "conformal scaled", level, mean, truth, scaled.band(level).values * scale)
    out(f"peak RSS {peak_rss_mb():.0f} MB; load after: {Path('/proc/loadavg').read_text().split()[:3]}")
    write(args, out)


def write(args: argparse.Namespace, out: Transcript) -> None:
    if args.out:
        Path(args.out).write_text("\n".join(out.lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("calibration", "prior", "large", "posterior", "ensemble"):
        p = sub.add_parser(name)
        if name != "ensemble":
            p.add_argument("--surrogate", default="default", help="run dir or 'default'")
        p.add_argument("--out", help="write the transcript here")
        p.add_argument("--batch-size", type=int, default=64)
        if name in ("calibration", "prior", "posterior", "ensemble"):
            p.add_argument("--heldout", required=True, help="held-out channel store (never trained on)")
        if name == "calibration":
            p.add_argument("--ood", help="out-of-family store (e.g. Gaussian geology)")
            p.add_argument("--split-seed", type=int, default=0)
            p.add_argument("--delta", type=float, default=0.1)
            p.add_argument("--save", help="save the calibration here (a run dir or a .nc path)")
        if name in ("prior", "large"):
            p.add_argument("--members", type=int, default=200 if name == "prior" else 10_000)
        if name == "large":
            p.add_argument("--seed", type=int, default=12)
        if name == "ensemble":
            p.add_argument("--runs", nargs="+", required=True, help="the members' run dirs (or 'default')")
            p.add_argument("--split-seed", type=int, default=0)
            p.add_argument("--scale-floor", type=float, default=1e-3, help="floor of the std as a scale")
        if name == "posterior":
            p.add_argument("--truths", type=int, default=20)
            p.add_argument("--members", type=int, default=5)
            p.add_argument("--iterations", type=int, default=12)
            p.add_argument("--modes", type=int, default=32)
            p.add_argument("--prior-draws", type=int, default=200)
            p.add_argument("--prior-seed", type=int, default=4242)
    args = parser.parse_args()
    commands = {
        "calibration": cmd_calibration,
        "prior": cmd_prior,
        "large": cmd_large,
        "posterior": cmd_posterior,
        "ensemble": cmd_ensemble,
    }
    commands[args.command](args)


if __name__ == "__main__":
    main()
