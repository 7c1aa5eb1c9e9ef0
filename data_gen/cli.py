"""``ccs-fno generate`` and ``ccs-fno verify``: the command line of ensemble generation.

Only argparse is imported here; the pipeline (dask, xarray, GSTools) is imported when the command
runs, so other subcommands start fast. Exit codes of ``generate``: 0 all samples done, 1 some
samples failed (or the cluster or disk failed), 2 bad input or the store is locked by another
writer, 130 interrupted. ``verify``: 0 intact, 1 damaged samples (listed), 2 not a store.
"""

from __future__ import annotations

import argparse
import json
import sys

GEOLOGY_CHOICES = (
    "channel",
    "gaussian",
)  # data_gen.geology.GEOLOGY_KINDS, without importing GSTools


def number_type(kind: type, minimum: float, strict: bool = False):
    """An argparse ``type`` parsing ``kind`` (int or float) >= ``minimum`` (> with ``strict``)."""
    name = {int: "an integer", float: "a number"}[kind]

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or value < minimum or (strict and value == minimum):
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            raise argparse.ArgumentTypeError(f"must be {name} {bound}, got {text!r}")
        return value

    return parse


CONFIG_OPTIONS = (  # (flag, type, minimum, help) of the numeric options that shape the store
    ("--samples-per-chunk", int, 1, "samples per Zarr chunk and task (default 4)"),
    ("--resolution", int, 2, "cells along x and z of the 960 m section (default 64: 15 m cells)"),
    ("--max-steps", int, 1, "step budget of one simulation (default 1000000); beyond it the sample fails"),
    (
        "--spatial-chunks",
        int,
        1,
        "Zarr chunks along z of the spatial fields (default 1), for large grids read by spatially "
        "parallel training: a reader decompresses only the z chunks it needs; 1 to nz, giving "
        "exactly that many chunks of ceil(nz/N) rows. Set when the store is created; --resume "
        "keeps the store's own",
    ),
)
DEFAULTS = {"seed": 0, "samples_per_chunk": 4, "resolution": 64, "max_steps": 1_000_000}
DEFAULTS |= {"pressure": False, "rate_range": (50.0, 150.0), "spatial_chunks": 1}
STORE_OPTIONS = (
    "seed",
    "samples_per_chunk",
    "resolution",
    "max_steps",
    "pressure",
    "rate_range",
    "spatial_chunks",
)


def add_generate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``generate`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "generate",
        help="simulate an ensemble of CO2-injection scenarios into a Zarr store",
        description=(
            "Draw scenarios (geology, injection rate, wells) and simulate CO2 injection for each, "
            "in parallel with dask, into a resumable Zarr store (holding its write lock). Exit codes: "
            "0 all samples done, 1 some samples failed (listed), 2 bad input or the store is being "
            "written by another process."
        ),
    )
    parser.add_argument("out", metavar="OUT.zarr", help="path of the Zarr store to write")
    parser.add_argument(
        "--samples",
        type=number_type(int, 1),
        help="number of samples (required, except with --resume/--repair of an existing store)",
    )
    parser.add_argument(
        "--geology",
        choices=GEOLOGY_CHOICES,
        help="geology kind (required, except with --resume/--repair of an existing store)",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=number_type(int, 1), help="local worker processes (default: one per core)"
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="address of a running dask scheduler to use instead"
    )
    parser.add_argument("--seed", type=number_type(int, 0), help="master seed (default 0)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="continue an existing store made with the same options (missing chunk files are regenerated)",
    )
    mode.add_argument(
        "--repair",
        action="store_true",
        help=(
            "resume after verifying every done sample against its checksum, regenerating damaged "
            "ones; without --samples/--geology the store's own configuration is used"
        ),
    )
    mode.add_argument("--overwrite", action="store_true", help="replace an existing store")
    for flag, kind, minimum, text in CONFIG_OPTIONS:
        parser.add_argument(flag, type=number_type(kind, minimum), help=text)
    parser.add_argument("--pressure", action="store_true", default=None, help="store pressure too")
    parser.add_argument(
        "--rate-range",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help=(
            "injection rate range in m3/day (default 50 150; at most 1e-3 section pore volumes per "
            "day, 3456 m3/day for the canonical section)"
        ),
    )
    parser.add_argument(
        "--retries", type=number_type(int, 0), default=1, help="extra attempts of a failing sample"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_generate)
    return parser


def _store_config(args: argparse.Namespace):
    """The StoreConfig the arguments ask for; the store's own when --samples/--geology are left out."""
    from data_gen.scenarios import default_space
    from data_gen.store import StoreConfig, is_store, read_config

    if args.samples is None and args.geology is None:
        if not (args.resume or args.repair):
            raise ValueError(
                "--samples and --geology are required (they may be left out only with --resume or "
                "--repair of an existing store, whose own configuration is then used)"
            )
        given = [f"--{name.replace('_', '-')}" for name in STORE_OPTIONS if getattr(args, name) is not None]
        if given:
            raise ValueError(
                f"{given} given without --samples and --geology: a store resumed with its own "
                "configuration cannot change it; give all the original options, or none"
            )
        return read_config(args.out)
    if args.samples is None or args.geology is None:
        raise ValueError("give both --samples and --geology (or neither, with --resume/--repair)")
    options = {
        name: DEFAULTS[name] if getattr(args, name) is None else getattr(args, name) for name in DEFAULTS
    }
    if args.spatial_chunks is None and (args.resume or args.repair) and is_store(args.out):
        options["spatial_chunks"] = read_config(args.out).spatial_chunks  # a layout, kept on resume
    space = default_space(
        args.geology,
        options["resolution"],
        rate_m3_per_day_range=tuple(options["rate_range"]),
        max_steps=options["max_steps"],
    )
    return StoreConfig(
        space,
        options["seed"],
        args.samples,
        options["samples_per_chunk"],
        options["pressure"],
        options["spatial_chunks"],
    )


def run_generate(args: argparse.Namespace) -> int:
    """Run ``generate`` from parsed arguments; return the exit code."""
    from data_gen.lock import StoreLockedError
    from data_gen.pipeline import generate

    try:
        config = _store_config(args)
        report = generate(
            args.out,
            config.space,
            config.n_samples,
            config.master_seed,
            workers=args.workers,
            scheduler_address=args.scheduler,
            resume=args.resume,
            repair=args.repair,
            overwrite=args.overwrite,
            samples_per_chunk=config.samples_per_chunk,
            with_pressure=config.with_pressure,
            spatial_chunks=config.spatial_chunks,
            retries=args.retries,
            progress=not args.no_progress,
        )
    except (ValueError, TypeError, FileExistsError, FileNotFoundError, StoreLockedError) as err:
        print(f"ccs-fno generate: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. no scheduler at --scheduler, a full disk
        print(f"ccs-fno generate: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "ccs-fno generate: interrupted; run the same command with --resume to continue", file=sys.stderr
        )
        return 130
    print(report.summary())
    for damaged in report.repaired:
        print(f"ccs-fno generate: regenerated damaged {damaged}")
    for failure in report.failures:
        print(f"ccs-fno generate: {failure}", file=sys.stderr)
    return 0 if report.ok else 1


def add_verify_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``verify`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "verify",
        help="check a store's done samples against their checksums",
        description=(
            "Read every done sample of STORE back and compare it with the checksum written with it; "
            "list damaged samples (missing or undecodable chunk files, altered or non-finite values) "
            "by index and seed. Repair with `ccs-fno generate STORE --repair`. Exit codes: 0 intact, "
            "1 damaged samples, 2 not a ccs-fno store."
        ),
    )
    parser.add_argument("store", metavar="STORE", help="path of the Zarr store")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--quick", action="store_true", help="only check that the chunk files of done samples exist"
    )
    parser.set_defaults(run=run_verify)
    return parser


def run_verify(args: argparse.Namespace) -> int:
    """Run ``verify`` from parsed arguments; return the exit code."""
    from data_gen.integrity import verify_store

    try:
        report = verify_store(args.store, full=not args.quick)
    except (ValueError, FileNotFoundError) as err:
        print(f"ccs-fno verify: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.summary())
    return 0 if report.ok else 1
