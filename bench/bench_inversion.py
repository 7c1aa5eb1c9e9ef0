"""Issue 11, "Quality, measured": permeability inversion through the surrogate on held-out truths.

For each truth (a sample of a store the surrogate never saw, e.g. master seed 9001) and each
observation setup (three monitoring wells at 200/400/600 days; full-field snapshots at 200 and
400 days), with 2 % Gaussian noise (std 0.02 saturation):

* permeability SNR (dB) and relative L2 of ln k, at the start (prior mean) and after;
* normalised data misfit chi^2 / N;
* the 1000-day plume of the inverted model CONFIRMED by the real simulator vs the truth's plume
  (relative L2), against the same for the prior-mean model (also simulated), and the surrogate's
  own forecast; a "surrogate-only success" is a truth where the surrogate's forecast beats half
  the prior-mean error but the simulator's does not;
* speed: seconds per inversion (``--iterations`` iterations, one thread).

Prints one line per (truth, setup) and a summary; ``--out`` keeps the transcript.

    python bench/bench_inversion.py /work/bench_data/heldout_channel.zarr --truths 20 \
        --out docs/results/inversion.txt
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from transcript import Transcript, cpu_model  # noqa: E402

from ccs_fno.inversion import (  # noqa: E402
    InversionConfig,
    MonitoringWells,
    ObservationDesign,
    Snapshots,
    inversion_report,
    invert,
    load_prior_for,
    plume_rel_l2,
    synthesize_observations,
    truth_from_store,
    verify,
)
from ccs_fno.surrogate import load_surrogate  # noqa: E402

SETUPS = {
    "wells": lambda noise: ObservationDesign(
        wells=MonitoringWells(x_m=(240.0, 480.0, 720.0), times_days=(200.0, 400.0, 600.0)), noise_std=noise
    ),
    "full-field": lambda noise: ObservationDesign(
        snapshots=Snapshots(times_days=(200.0, 400.0)), noise_std=noise
    ),
}
FORECAST_DAYS = 1000.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("store", help="held-out store (samples never used for training)")
    parser.add_argument("--surrogate", default="default", help="run dir or 'default'")
    parser.add_argument("--truths", type=int, default=20)
    parser.add_argument("--first", type=int, default=0, help="first sample index of the store")
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--noise", type=float, default=0.02, help="noise std (saturation units)")
    parser.add_argument("--parameterisation", default="pca")
    parser.add_argument("--regulariser", default="tikhonov")
    parser.add_argument("--weight", type=float, default=1.0)
    parser.add_argument("--n-modes", type=int, default=64)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--restarts", type=int, default=1)
    parser.add_argument("--prior-samples", type=int, default=400)
    parser.add_argument("--prior-seed", type=int, default=31337, help="master seed of the prior draw")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--speed",
        type=int,
        default=0,
        help="only time this many inversions of the first truth (wall and CPU s)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    say = Transcript()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    say(f"# bench_inversion  {' '.join(sys.argv[1:])}")
    say(
        f"# machine: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"threads {args.threads}, "
        f"python {platform.python_version()}, commit {commit}"
    )
    say(f"# load at start: {os.getloadavg()}")
    surrogate = load_surrogate(args.surrogate)
    prior = load_prior_for(surrogate, args.prior_samples, args.prior_seed)
    config = InversionConfig(
        parameterisation=args.parameterisation,
        regulariser=args.regulariser,
        weight=args.weight,
        n_modes=args.n_modes,
        optimizer=args.optimizer,
        iterations=args.iterations,
        restarts=args.restarts,
    )
    test_error = (
        surrogate.provenance.get("errors", {}).get("test_split_rel_l2", {}).get("rel_l2_mean", "not recorded")
    )
    say(f"# surrogate: {args.surrogate} (test rel-L2 {test_error})")
    say(
        f"# prior: {prior.n_samples} fields of {prior.space.geology} geology, master seed {prior.master_seed}"
    )
    say(f"# config: {json.dumps(config.to_dict())}")
    # warm-up (first-call costs of the FFT plans and einsum paths are not an inversion's)
    warm = synthesize_observations(truth_from_store(args.store, args.first), SETUPS["wells"](args.noise), 0)
    invert(
        surrogate,
        warm,
        prior,
        InversionConfig(iterations=3, parameterisation=args.parameterisation, n_modes=args.n_modes),
    )
    if args.speed:
        speed(args, surrogate, prior, config, say)
        return
    say(
        "truth setup | snr_dB start->inv | lnk_relL2 start->inv | chi2/N | forecast relL2 @1000d: "
        "prior-mean(sim) inverted(sim) inverted(surrogate) | ratio sim | s/inversion | load1"
    )
    rows = []
    for index in range(args.first, args.first + args.truths):
        truth = truth_from_store(args.store, index)
        plume_true = truth["saturation"].sel(time=FORECAST_DAYS).values
        for setup in args.setups:
            obs = synthesize_observations(truth, SETUPS[setup](args.noise), seed=1000 + index)
            result = invert(surrogate, obs, prior, config)
            report = inversion_report(result, truth)
            started = time.perf_counter()
            confirmed = verify(result).sel(time=FORECAST_DAYS).values
            prior_mean = verify(result, "start_permeability").sel(time=FORECAST_DAYS).values
            sim_s = time.perf_counter() - started
            row = {
                "truth": index,
                "setup": setup,
                **{k: report[k] for k in ("snr_db_start", "snr_db", "log_k_rel_l2_start", "log_k_rel_l2")},
                "chi2_n": report["normalised_misfit"],
                "forecast_prior_sim": plume_rel_l2(prior_mean, plume_true),
                "forecast_inv_sim": plume_rel_l2(confirmed, plume_true),
                "forecast_inv_surrogate": plume_rel_l2(
                    result["forecast_saturation"].sel(time=FORECAST_DAYS).values, plume_true
                ),
                "seconds": report["elapsed_s"],
                "simulate_two_s": sim_s,
                "load1": os.getloadavg()[0],
            }
            row["ratio_sim"] = row["forecast_inv_sim"] / row["forecast_prior_sim"]
            rows.append(row)
            say(
                f"{index:5d} {setup:10s} | {row['snr_db_start']:5.2f} -> {row['snr_db']:5.2f} | "
                f"{row['log_k_rel_l2_start']:.3f} -> {row['log_k_rel_l2']:.3f} | {row['chi2_n']:5.2f} | "
                f"{row['forecast_prior_sim']:.3f} {row['forecast_inv_sim']:.3f} "
                f"{row['forecast_inv_surrogate']:.3f} | "
                f"{row['ratio_sim']:.2f} | {row['seconds']:5.1f} | {row['load1']:.1f}"
            )
    say()
    say(
        f"summary over {args.truths} truths (samples {args.first}..{args.first + args.truths - 1}), "
        f"noise std "
        f"{args.noise:g}, {args.iterations} iterations x {args.restarts} restart(s), {args.parameterisation}"
    )
    for setup in args.setups:
        part = [r for r in rows if r["setup"] == setup]

        def stat(key: str, part=part) -> str:
            values = np.array([r[key] for r in part])
            return f"median {np.median(values):.3f} (mean {values.mean():.3f})"

        prior_err = np.array([r["forecast_prior_sim"] for r in part])
        inv_err = np.array([r["forecast_inv_sim"] for r in part])
        surr_err = np.array([r["forecast_inv_surrogate"] for r in part])
        surrogate_only = [
            r["truth"]
            for r in part
            if r["forecast_inv_surrogate"] <= 0.5 * r["forecast_prior_sim"]
            and r["forecast_inv_sim"] > 0.5 * r["forecast_prior_sim"]
        ]
        say(f"[{setup}]")
        say(f"  SNR dB start {stat('snr_db_start')} -> inverted {stat('snr_db')}")
        say(f"  ln-k rel-L2 start {stat('log_k_rel_l2_start')} -> inverted {stat('log_k_rel_l2')}")
        say(f"  chi2/N {stat('chi2_n')}")
        say(
            f"  1000-d plume rel-L2: prior-mean (simulated) {stat('forecast_prior_sim')}; "
            "inverted, simulator-"
            f"confirmed {stat('forecast_inv_sim')}; inverted, surrogate {stat('forecast_inv_surrogate')}"
        )
        say(
            "  ratio inverted/prior-mean (simulator), of the mean errors: "
            f"{inv_err.mean() / prior_err.mean():.3f}; "
            f"median of per-truth ratios {np.median(inv_err / prior_err):.3f}; truths at <= 0.5: "
            f"{int(np.sum(inv_err <= 0.5 * prior_err))}/{len(part)}; worse than the prior mean: "
            f"{int(np.sum(inv_err > prior_err))}/{len(part)}"
        )
        say(
            f"  surrogate's own forecast error / prior-mean: {surr_err.mean() / prior_err.mean():.3f}; "
            f"surrogate-only successes (surrogate <= 0.5x, simulator not): {surrogate_only or 'none'}"
        )
        say(
            f"  seconds per inversion ({args.iterations} iterations, {args.threads} thread): "
            f"{stat('seconds')}"
        )
    say(f"# load at end: {os.getloadavg()}")
    if args.out:
        args.out.write_text("\n".join(say.lines) + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")


def speed(args, surrogate, prior, config, say) -> None:
    """Wall-clock and CPU seconds (this process) of ``args.speed`` inversions: on one thread the CPU
    time is what an idle core would take, whatever else shares the machine."""
    obs = synthesize_observations(
        truth_from_store(args.store, args.first), SETUPS["full-field"](args.noise), 0
    )
    walls, cpus = [], []
    for _ in range(args.speed):
        wall, cpu = time.perf_counter(), time.process_time()
        invert(surrogate, obs, prior, config)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        say(
            f"inversion ({args.iterations} iterations, {args.threads} thread): wall {walls[-1]:.2f} s, "
            f"CPU {cpus[-1]:.2f} s, load1 {os.getloadavg()[0]:.1f}"
        )
    say(f"median: wall {np.median(walls):.2f} s, CPU {np.median(cpus):.2f} s")
    if args.out:
        args.out.write_text("\n".join(say.lines) + "\n")


if __name__ == "__main__":
    main()
