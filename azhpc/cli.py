"""The ``azhpc`` command line: a thin layer over the same API the notebooks use."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="azhpc", description="High-performance data science on Azure from a notebook."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    commands = parser.add_subparsers(dest="command")
    quick = commands.add_parser(
        "quickstart", help="run the quickstart on the embedded local profile"
    )
    quick.add_argument("--workers", type=int, default=None, help="worker processes")
    quick.add_argument("--rows", type=int, default=1_000_000, help="rows in the demo frame")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    if args.version:
        import azhpc

        print(azhpc.__version__)
        return 0
    if args.command == "quickstart":
        from azhpc.errors import AzhpcError
        from azhpc.quickstart import run

        try:
            return run(workers=args.workers, rows=args.rows)
        except AzhpcError as error:
            print(f"azhpc: {error}", file=sys.stderr)
            return 1
    _parser().print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
