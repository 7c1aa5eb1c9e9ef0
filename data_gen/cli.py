"""``ccs-fno generate``: the command line of ensemble generation.

Only argparse is imported here; the pipeline (dask, xarray, GSTools) is imported when the command
runs, so other subcommands start fast. Exit codes: 0 all samples done, 1 some samples failed
(or the cluster or disk failed), 2 bad input, 130 interrupted.
"""

from __future__ import annotations

import argparse
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


def add_generate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``generate`` subcommand to ``subparsers``."""
    parser = subparsers.add_parser(
        "generate",
        help="simulate an ensemble of CO2-injection scenarios into a Zarr store",
        description=(
            "Draw scenarios (geology, injection rate, wells) and simulate CO2 injection for each, "
            "in parallel with dask, into a resumable Zarr store. Exit codes: 0 all samples done, "
            "1 some samples failed (listed), 2 bad input."
        ),
    )
    parser.add_argument("out", metavar="OUT.zarr", help="path of the Zarr store to write")
    parser.add_argument("--samples", type=number_type(int, 1), required=True, help="number of samples")
    parser.add_argument("--geology", choices=GEOLOGY_CHOICES, required=True)
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--workers", type=number_type(int, 1), help="local worker processes (default: one per core)"
    )
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="address of a running dask scheduler to use instead"
    )
    parser.add_argument("--seed", type=number_type(int, 0), default=0, help="master seed (default 0)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="continue an existing store made with the same options",
    )
    mode.add_argument("--overwrite", action="store_true", help="replace an existing store")
    parser.add_argument(
        "--samples-per-chunk", type=number_type(int, 1), default=4, help="samples per Zarr chunk and task"
    )
    parser.add_argument(
        "--resolution",
        type=number_type(int, 2),
        default=64,
        help="cells along x and z of the 960 m section (default 64: 15 m cells)",
    )
    parser.add_argument("--pressure", action="store_true", help="store pressure too")
    parser.add_argument(
        "--rate-range",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        default=(50.0, 150.0),
        help="injection rate range in m3/day (default 50 150)",
    )
    parser.add_argument(
        "--retries", type=number_type(int, 0), default=1, help="extra attempts of a failing sample"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_generate)
    return parser


def run_generate(args: argparse.Namespace) -> int:
    """Run ``generate`` from parsed arguments; return the exit code."""
    from data_gen.pipeline import generate
    from data_gen.scenarios import default_space

    try:
        space = default_space(args.geology, args.resolution, rate_m3_per_day_range=tuple(args.rate_range))
        report = generate(
            args.out,
            space,
            args.samples,
            args.seed,
            workers=args.workers,
            scheduler_address=args.scheduler,
            resume=args.resume,
            overwrite=args.overwrite,
            samples_per_chunk=args.samples_per_chunk,
            with_pressure=args.pressure,
            retries=args.retries,
            progress=not args.no_progress,
        )
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as err:
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
    for failure in report.failures:
        print(f"ccs-fno generate: {failure}", file=sys.stderr)
    return 0 if report.ok else 1
