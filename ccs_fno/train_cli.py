"""``ccs-fno train`` and ``ccs-fno evaluate``: the command lines of training and evaluation.

Only argparse is imported at module level; torch and the training stack are imported when a
command runs, so ``ccs-fno --help`` stays fast. Exit codes: 0 success, 2 bad input (the message
names the value and what is allowed). ``python -m ccs_fno.train_cli train|evaluate ...`` runs
the same commands without the ``ccs-fno`` dispatcher.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from data_gen.cli import number_type

PRECISION_CHOICES = ("full", "half", "mixed")  # ccs_fno.nn.PRECISIONS, without importing torch
# TrainConfig fields settable from the command line (argparse dest -> field).
TRAIN_OPTIONS = (
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "scheduler",
    "h1_weight",
    "seed",
    "split_seed",
    "val_fraction",
    "test_fraction",
    "num_workers",
    "device",
    "deterministic",
)
MODEL_OPTIONS = {"width": "width", "modes": "modes", "layers": "n_layers"}


def add_train_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "train",
        help="train an FNO surrogate on a generated store",
        description=(
            "Train an FNO on the done samples of STORE into --run-dir (config.json, "
            "checkpoint.pt and model.pt after every epoch, metrics.jsonl). A killed run "
            "continues with --resume, reproducing the uninterrupted loss curve. Options left out "
            "take the TrainConfig / ModelConfig defaults; with --resume the saved ones are used "
            "and training options are refused. Exit codes: 0 done, 2 bad input."
        ),
    )
    parser.add_argument("store", metavar="STORE", help="Zarr store written by `ccs-fno generate`")
    parser.add_argument("--run-dir", required=True, help="directory of the run's files")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument("--epochs", type=number_type(int, 1))
    parser.add_argument("--batch-size", type=number_type(int, 1))
    parser.add_argument("--lr", type=number_type(float, 0, strict=True), help="AdamW learning rate")
    parser.add_argument("--weight-decay", type=number_type(float, 0))
    parser.add_argument("--scheduler", choices=("cosine", "step"))
    parser.add_argument("--h1-weight", type=number_type(float, 0), help="weight of the H1 loss term")
    parser.add_argument("--width", type=number_type(int, 1), help="FNO channel width")
    parser.add_argument("--modes", type=number_type(int, 1), help="Fourier modes kept along z and x")
    parser.add_argument("--layers", type=number_type(int, 1), help="Fourier layers")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--precision", choices=PRECISION_CHOICES, help="one precision throughout")
    precision.add_argument(
        "--precision-schedule",
        metavar="SCHEDULE",
        help="e.g. 'half:0.7,full': half for the first 70%% of epochs, then full",
    )
    parser.add_argument("--seed", type=number_type(int, 0), help="initialisation and shuffling seed")
    parser.add_argument("--split-seed", type=number_type(int, 0), help="train/val/test split seed")
    parser.add_argument("--val-fraction", type=number_type(float, 0, strict=True))
    parser.add_argument("--test-fraction", type=number_type(float, 0))
    parser.add_argument("--num-workers", type=number_type(int, 0), help="DataLoader worker processes")
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument(
        "--deterministic",
        action="store_true",
        default=None,
        help="deterministic torch algorithms (bit-exact resume on CPU)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run_train)
    return parser


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "evaluate",
        help="relative L2 error of a trained surrogate on a store",
        description=(
            "Predict the samples of a split of STORE with the surrogate in RUN_DIR and print the "
            "relative L2 error ||pred - truth|| / ||truth|| (mean, median, max, per sample) as "
            "JSON. STORE may have another resolution than the training store (same section and "
            "report times): zero-shot super-resolution. Exit codes: 0 done, 2 bad input."
        ),
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="directory of a training run")
    parser.add_argument("store", metavar="STORE", help="Zarr store to evaluate on")
    parser.add_argument(
        "--split",
        choices=("train", "val", "test", "all"),
        default="test",
        help="the run's split of sample indices, or all done samples (default test)",
    )
    parser.add_argument("--batch-size", type=number_type(int, 1), default=32)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, help="override the model's")
    parser.add_argument("--output", metavar="FILE", help="also write the JSON to FILE")
    parser.set_defaults(run=run_evaluate)
    return parser


def _fail(command: str, err: BaseException) -> int:
    print(f"ccs-fno {command}: error: {err}", file=sys.stderr)
    return 2


def run_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ccs_fno.train import ModelConfig, TrainConfig, Trainer

    options = {name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None}
    schedule = args.precision_schedule or args.precision
    if schedule is not None:
        options["precision_schedule"] = schedule
    model_options = {
        field: getattr(args, dest) for dest, field in MODEL_OPTIONS.items() if getattr(args, dest) is not None
    }
    try:
        if args.resume:
            given = sorted({**options, **model_options})
            if given:
                raise ValueError(
                    f"options {given} were given with --resume; a resumed run keeps its saved "
                    "configuration (start a new --run-dir to change it)"
                )
            trainer = Trainer.resume(args.run_dir)
            if Path(trainer.store.path) != Path(args.store).resolve():
                raise ValueError(
                    f"the run in {args.run_dir} trains on {trainer.store.path}, not {args.store}"
                )
        else:
            trainer = Trainer(args.store, args.run_dir, TrainConfig(**options), ModelConfig(**model_options))
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as err:
        return _fail("train", err)
    history = trainer.fit(progress=not args.no_progress)
    last = history[-1] if history else {}
    print(json.dumps({"run_dir": str(args.run_dir), "epochs": trainer.epoch, **last}))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ccs_fno.surrogate import evaluate, load_surrogate

    try:
        surrogate = load_surrogate(args.run_dir, device=args.device, precision=args.precision)
        result = evaluate(surrogate, args.store, split=args.split, batch_size=args.batch_size)
    except (ValueError, TypeError, FileNotFoundError) as err:
        return _fail("evaluate", err)
    text = json.dumps({"run_dir": str(args.run_dir), **result}, indent=2)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ccs_fno.train_cli train|evaluate ...`` (the same as ``ccs-fno``'s)."""
    parser = argparse.ArgumentParser(prog="ccs-fno", description="Train and evaluate surrogates.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_train_parser(subparsers)
    add_evaluate_parser(subparsers)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
