"""The ``ccs-fno`` command: a dispatcher of subcommands.

Each subcommand module provides ``add_<name>_parser(subparsers)``, which registers its parser and
sets ``run`` (a function of the parsed arguments returning the exit code) as a default; it imports
its heavy dependencies only inside ``run``, so ``ccs-fno --help`` stays fast. To add a subcommand,
append its ``add_*_parser`` to ``SUBCOMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from ccs_fno.train_cli import add_evaluate_parser, add_train_parser
from data_gen.cli import add_generate_parser, add_verify_parser

SUBCOMMANDS = (add_generate_parser, add_verify_parser, add_train_parser, add_evaluate_parser)


def build_parser() -> argparse.ArgumentParser:
    try:
        package_version = version("ccs-fno")
    except PackageNotFoundError:  # a source tree that is not installed
        package_version = "unknown"
    parser = argparse.ArgumentParser(
        prog="ccs-fno",
        description="CO2-storage surrogates: generate simulation ensembles, train and evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_parser in SUBCOMMANDS:
        add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand, return its exit code."""
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
