"""``ccs-fno train`` and ``ccs-fno evaluate``: the command lines of training and evaluation.

Only argparse is imported at module level; torch and the training stack are imported when a
command runs, so ``ccs-fno --help`` stays fast. Exit codes: 0 success, 2 bad input (the message
names the value and what is allowed). ``python -m ccs_fno.train_cli train|evaluate ...`` runs
the same commands without the ``ccs-fno`` dispatcher.

Data-parallel training: ``ccs-fno train STORE --nproc P ...`` checks the input in this process
(clear errors, nothing written), then runs ``torchrun --standalone --nproc-per-node P -m
ccs_fno.train_cli train STORE ...`` and returns its exit code. On a cluster, start torchrun
yourself on every node (``torchrun --nnodes N --nproc-per-node P --rdzv-backend c10d
--rdzv-endpoint HOST:PORT -m ccs_fno.train_cli train STORE ...``): a process started by torchrun
joins the job from torchrun's environment. After a restart by torchrun (``--max-restarts``)
every process continues from the run's last checkpoint.
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
    "calibration_fraction",
    "num_workers",
    "device",
    "deterministic",
    "optimizer",
    "dtype",
    "grad_compression",
)
MODEL_OPTIONS = {"width": "width", "modes": "modes", "layers": "n_layers", "norm": "norm"}
OPTIMIZER_CHOICES = ("adamw", "soap")  # ccs_fno.optim.optimizer_names(), without importing torch
# Options of this process, not of the run: never forwarded to torchrun's workers.
LAUNCHER_OPTIONS = ("--nproc", "--max-restarts")


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
            "and training options are refused. --batch-size is the global batch: with --nproc P "
            "each process takes batch/P samples a step, so a run does not depend on P and resumes "
            "on any P that divides the batch. Half/mixed precision on a CPU without native "
            "bfloat16 (no AMX or AVX512-BF16) is several times slower than full: use --precision "
            "full there. Exit codes: 0 done, 1 the disk filled up (the run stays resumable), 2 bad "
            "input, other: a process of the job failed."
        ),
    )
    parser.add_argument("store", metavar="STORE", help="Zarr store written by `ccs-fno generate`")
    parser.add_argument("--run-dir", required=True, help="directory of the run's files")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument(
        "--nproc",
        type=number_type(int, 1),
        help="data-parallel processes on this machine, started with torchrun (default 1: no torchrun)",
    )
    parser.add_argument(
        "--spatial-parallel",
        type=number_type(int, 1),
        default=1,
        metavar="S",
        help=(
            "with --nproc P: split every sample's grid in S slabs along z over S processes (spatial "
            "model parallelism); P/S data-parallel replicas share the batch (default 1)"
        ),
    )
    parser.add_argument(
        "--max-restarts",
        type=number_type(int, 0),
        default=0,
        help="with --nproc: times torchrun restarts the job from its last checkpoint after a failure",
    )
    parser.add_argument("--epochs", type=number_type(int, 1))
    parser.add_argument("--batch-size", type=number_type(int, 1), help="global batch (all processes)")
    parser.add_argument("--lr", type=number_type(float, 0, strict=True), help="learning rate")
    parser.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, help="default adamw")
    parser.add_argument("--weight-decay", type=number_type(float, 0))
    parser.add_argument("--scheduler", choices=("cosine", "step"))
    parser.add_argument("--h1-weight", type=number_type(float, 0), help="weight of the H1 loss term")
    parser.add_argument("--width", type=number_type(int, 1), help="FNO channel width")
    parser.add_argument("--modes", type=number_type(int, 1), help="Fourier modes kept along z and x")
    parser.add_argument("--layers", type=number_type(int, 1), help="Fourier layers")
    parser.add_argument(
        "--norm", choices=("batch",), help="batch normalisation in the Fourier layers (synchronised)"
    )
    parser.add_argument(
        "--dtype", choices=("float32", "float64"), help="parameter dtype (float64: references)"
    )
    parser.add_argument(
        "--grad-compression",
        choices=("none", "fp16", "bf16"),
        help="send data-parallel gradients in half precision (half the bytes)",
    )
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        help=(
            "one precision throughout (default full). half/mixed run the spectral contraction in "
            "reduced precision (float16 with float16 FFTs on CUDA; bfloat16 on CPU, FFTs float32). "
            "On a CPU without native bfloat16 (no AMX-BF16 / AVX512-BF16) half/mixed are much "
            "slower than full (measured 7.6x per step); the run warns once: use full there"
        ),
    )
    precision.add_argument(
        "--precision-schedule",
        metavar="SCHEDULE",
        help="e.g. 'half:0.7,full': half for the first 70%% of epochs, then full",
    )
    parser.add_argument("--seed", type=number_type(int, 0), help="initialisation and shuffling seed")
    parser.add_argument("--split-seed", type=number_type(int, 0), help="train/val/test split seed")
    parser.add_argument("--val-fraction", type=number_type(float, 0, strict=True))
    parser.add_argument("--test-fraction", type=number_type(float, 0))
    parser.add_argument(
        "--calibration-fraction",
        type=number_type(float, 0),
        help="hold out this share of samples as a 'calibration' split for ccs_fno.uq (default 0: none)",
    )
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


def _options(args: argparse.Namespace) -> tuple[dict, dict]:
    options = {name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None}
    schedule = args.precision_schedule or args.precision
    if schedule is not None:
        options["precision_schedule"] = schedule
    model_options = {
        field: getattr(args, dest) for dest, field in MODEL_OPTIONS.items() if getattr(args, dest) is not None
    }
    if args.resume and {**options, **model_options}:
        raise ValueError(
            f"options {sorted({**options, **model_options})} were given with --resume; a resumed run "
            "keeps its saved configuration (start a new --run-dir to change it)"
        )
    return options, model_options


def _check_launch(args: argparse.Namespace, options: dict, model_options: dict) -> None:
    """Everything a torchrun job would refuse, checked here first (nothing is written)."""
    from ccs_fno.data import read_store, split_samples
    from ccs_fno.run_dir import RunDir
    from ccs_fno.train import ModelConfig, TrainConfig
    from ccs_fno.training_data import check_data_parallel

    run = RunDir(args.run_dir)
    if args.resume:
        config = TrainConfig.from_dict(run.load_checkpoint()["train_config"])
    else:
        config, _ = TrainConfig(**options), ModelConfig(**model_options)
        run.refuse_existing()
    summary = read_store(args.store)
    split = split_samples(
        summary.done_indices,
        config.val_fraction,
        config.test_fraction,
        config.split_seed,
        config.calibration_fraction,
    )
    spatial = args.spatial_parallel
    if args.nproc % spatial:
        raise ValueError(
            f"--nproc {args.nproc} is not divisible by --spatial-parallel {spatial}: the processes form "
            f"a grid of data-parallel replicas x {spatial} spatial shards; use a multiple of {spatial}"
        )
    check_data_parallel(split["train"].size, config.batch_size, args.nproc // spatial)
    if spatial > 1:
        from ccs_fno.spatial.training import check_spatial_layout

        modes = (
            RunDir(args.run_dir).load_checkpoint()["model_config"]["modes"]
            if args.resume
            else ModelConfig(**model_options).modes
        )
        check_spatial_layout(summary.grid.shape, modes, spatial)


def _launch(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Run this command under ``torchrun --standalone`` with ``args.nproc`` processes."""
    import subprocess

    forwarded, skip = [], False
    for item in argv:
        if skip:
            skip = False
            continue
        flag = item.split("=", 1)[0]
        if flag in LAUNCHER_OPTIONS:
            skip = "=" not in item
            continue
        forwarded.append(item)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(args.nproc),
        "--max-restarts",
        str(args.max_restarts),
        "-m",
        "ccs_fno.train_cli",
        *forwarded,
    ]
    return subprocess.run(command, check=False).returncode


def _in_torchrun() -> bool:
    import os

    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_RANK" in os.environ


def run_train(args: argparse.Namespace) -> int:
    import os

    try:
        options, model_options = _options(args)
    except ValueError as err:
        return _fail("train", err)
    if args.spatial_parallel > 1 and (args.nproc or 1) < 2 and not _in_torchrun():
        return _fail(
            "train",
            ValueError(
                f"--spatial-parallel {args.spatial_parallel} needs that many processes: add "
                f"--nproc {args.spatial_parallel} (or a multiple of it)"
            ),
        )
    if args.nproc not in (None, 1) and not _in_torchrun():
        try:
            _check_launch(args, options, model_options)
        except (ValueError, TypeError, FileNotFoundError, FileExistsError) as err:
            return _fail("train", err)
        return _launch(args, getattr(args, "argv", None) or sys.argv[1:])

    from ccs_fno.distributed import init_context, shutdown_context
    from ccs_fno.run_dir import RunDir, RunDirFull
    from ccs_fno.train import ModelConfig, TrainConfig, Trainer

    try:
        context = init_context(device=options.get("device", "auto"), spatial_size=args.spatial_parallel)
    except ValueError as err:
        return _fail("train", err)
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0
    try:
        if args.resume or (restarted and RunDir(args.run_dir).has_checkpoint()):
            trainer = Trainer.resume(args.run_dir, store=args.store)
            if restarted and context.is_main:
                print(
                    f"ccs-fno train: restarted by torchrun; continuing from the checkpoint of "
                    f"epoch {trainer.epoch} in {args.run_dir}",
                    file=sys.stderr,
                )
        else:
            trainer = Trainer.start(
                args.store, args.run_dir, TrainConfig(**options), ModelConfig(**model_options)
            )
    except (ValueError, TypeError, FileNotFoundError, FileExistsError) as err:
        shutdown_context()
        return _fail("train", err) if context.is_main else 2
    try:
        history = trainer.fit(progress=not args.no_progress)
    except RunDirFull as err:  # rank 0 wrote nothing torn; the others stop at the next collective
        print(f"ccs-fno train: error: {err.strerror}", file=sys.stderr)
        shutdown_context()
        return 1
    last = history[-1] if history else {}
    test = trainer.evaluate("test") if trainer.split["test"].size else None
    if context.is_main:
        summary = {"run_dir": str(args.run_dir), "epochs": trainer.epoch, **last, "test_rel_l2": test}
        print(json.dumps(summary))
    shutdown_context()
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
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
