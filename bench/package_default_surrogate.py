"""Package a trained run as the shipped default surrogate (``load_surrogate("default")``).

Copies the run's ``model.pt`` into ``ccs_fno/models/default/`` with its training distribution
recorded, evaluates it (test split of its training store, and every sample of held-out stores
drawn with master seeds never used for training) and writes ``provenance.json`` beside it: the
commands that made the data and the model, seeds, data configuration, errors, machine.

    python bench/package_default_surrogate.py RUN_DIR \\
        --generate-command "ccs-fno generate ..." --train-command "ccs-fno train ..." \\
        --heldout STORE [STORE ...] [--calibration CALIBRATION.nc --calibration-command "..."]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
from pathlib import Path

import torch

from ccs_fno.checkpoint import atomic_torch_save, atomic_write_bytes
from ccs_fno.domain import TrainingDomain
from ccs_fno.run_dir import PROVENANCE_FILE, load_model_file
from ccs_fno.surrogate import DEFAULT_SURROGATE, evaluate, load_surrogate
from ccs_fno.uq import Calibration
from data_gen.store import read_config


def _errors(result: dict) -> dict:
    return {k: result[k] for k in ("n_samples", "rel_l2_mean", "rel_l2_median", "rel_l2_max")}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--generate-command", required=True)
    parser.add_argument("--train-command", required=True)
    parser.add_argument("--heldout", nargs="*", default=[], type=Path, help="held-out stores to evaluate on")
    parser.add_argument("--out", type=Path, default=DEFAULT_SURROGATE)
    parser.add_argument(
        "--calibration",
        type=Path,
        help="a calibration.nc fitted on held-out simulations (bench/bench_uq.py calibration --save)",
    )
    parser.add_argument("--calibration-command", default="", help="the command that fitted it")
    args = parser.parse_args()

    state = load_model_file(args.run_dir)
    config = json.loads((args.run_dir / "config.json").read_text())
    store = config["store"]
    state["domain"] = TrainingDomain.from_store(store).to_dict()
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(state, args.out / "model.pt")

    surrogate = load_surrogate(args.out)
    test = evaluate(surrogate, store, split="test")
    heldout = {}
    for path in args.heldout:
        result = evaluate(surrogate, path, split="all")
        store_config = read_config(path)
        heldout[path.name] = {
            "master_seed": store_config.master_seed,
            "geology": store_config.space.geology,
            **_errors(result),
        }
        print(f"{path}: {_errors(result)}", flush=True)
    metrics = [json.loads(line) for line in (args.run_dir / "metrics.jsonl").read_text().splitlines()]
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    provenance = {
        "description": "the canonical ccs-fno surrogate: channel geology, 64x64 section, 51 report times",
        "commands": {"generate": args.generate_command, "train": args.train_command},
        "training_store": {
            "path_when_trained": store,
            "fingerprint": config["fingerprint"],
            "scenario_space": state["domain"]["space"],
        },
        "seeds": {
            "data_master_seed": config["fingerprint"]["master_seed"],
            "train_seed": config["train_config"]["seed"],
            "split_seed": config["train_config"]["split_seed"],
        },
        "split_sizes": {name: len(indices) for name, indices in config["split"].items()},
        "model_config": config["model_config"],
        "train_config": config["train_config"],
        "epochs": len(metrics),
        "training_wall_time_s": round(sum(m["epoch_time_s"] for m in metrics), 1),
        "errors": {"test_split_rel_l2": _errors(test), "heldout_stores_rel_l2": heldout},
        "packaged": {
            "date": datetime.date.today().isoformat(),
            "git_commit": commit,
            "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "command": "python bench/package_default_surrogate.py ...",
        },
    }
    if args.calibration is not None:
        calibration = Calibration.load(args.calibration)
        if not calibration.fits(surrogate.grid, surrogate.times_days):
            raise SystemExit(f"{args.calibration} was fitted on another grid or other report times")
        calibration.save(args.out)
        provenance["calibration"] = {
            "command": args.calibration_command,
            "n_calibration": int(calibration.data.attrs["n_calibration"]),
            "levels": calibration.data["level"].values.tolist(),
            "source": json.loads(calibration.data.attrs["source"]),
        }
    atomic_write_bytes(args.out / PROVENANCE_FILE, (json.dumps(provenance, indent=2) + "\n").encode())
    size_mb = (args.out / "model.pt").stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.1f} MB); test rel-L2 {test['rel_l2_mean']:.4f}", flush=True)


if __name__ == "__main__":
    main()
