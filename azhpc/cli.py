"""The ``azhpc`` command line: a thin layer over the same API the notebooks use."""

from __future__ import annotations

import argparse
import sys

import azhpc
from azhpc import quickstart
from azhpc.config import resolve_settings
from azhpc.emulator import workshop
from azhpc.emulator.state import discover, state_path
from azhpc.errors import AzhpcError
from azhpc.usql import UsqlError, run, script_lake
from azhpc.usql.params import parse_params

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
    usql = commands.add_parser("usql", help="run U-SQL scripts (Azure Data Lake Analytics)")
    usql_commands = usql.add_subparsers(dest="usql_command")
    usql_run = usql_commands.add_parser(
        "run",
        help="run a U-SQL script on the local profile",
        description="Run a U-SQL script. Paths in the script are lake paths; on the local "
        "profile they resolve under --lake-root. Exit code 0 on success; on failure the first "
        "line on stderr is SCRIPT:LINE:COL: CODE: message.",
    )
    usql_run.add_argument("script", metavar="SCRIPT", help="the .usql file")
    usql_run.add_argument(
        "--lake-root",
        metavar="DIR",
        default=None,
        help="the folder lake paths resolve under (default: $AZHPC_LAKE_ROOT or ~/.azhpc/lake)",
    )
    usql_run.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a job parameter (repeatable); VALUE is a U-SQL literal or else text",
    )
    usql_run.add_argument(
        "--parallelism",
        type=int,
        default=1,
        metavar="N",
        help="REDUCE groups run as N tasks on N local workers (ADLA's AUs; default 1)",
    )
    emulator = commands.add_parser(
        "emulator",
        help="run Azurite and the Batch emulator for a workshop",
        description="Run Azurite and the Batch emulator in the background, on 127.0.0.1. "
        "While they run, azhpc.connect('emulated') in any notebook or script on this machine "
        "uses them (one lake, one set of pools) instead of starting its own.",
    )
    emulator.add_argument("action", choices=("start", "status", "stop"))
    pools = commands.add_parser(
        "pools",
        help="list or delete Batch pools (find the ones a killed client left running)",
        description="Pools cost money until they are deleted. `list` shows every pool of the "
        "profile's Batch account (id, VM size, nodes, state, age, owner, cost per hour); "
        "`delete` deletes the pools named, or with --all-azhpc every pool azhpc created (its "
        "metadata says so) and no other.",
    )
    doctor = commands.add_parser(
        "doctor",
        help="check a profile's Azure setup before any money is spent",
        description="Check that the Batch and storage accounts accept the credentials, the "
        "container is writable, SAS for Batch nodes can be made, the default images are "
        "supported, the VM sizes are current and the clock is right. One line per check; exit "
        "code 0 when all pass, 1 when one fails, 2 when the profile cannot be read.",
    )
    doctor.add_argument(
        "--profile",
        metavar="NAME",
        default=None,
        help="the profile to check (default: $AZHPC_PROFILE or the config file's default)",
    )
    doctor.add_argument(
        "--vm-size",
        dest="vm_sizes",
        action="append",
        default=[],
        metavar="SIZE",
        help="a VM size you will use, checked besides azhpc's default (repeatable)",
    )
    pools_commands = pools.add_subparsers(dest="pools_command")
    for name, text in (("list", "list the pools"), ("delete", "delete pools")):
        sub = pools_commands.add_parser(name, help=text)
        sub.add_argument(
            "--profile",
            metavar="NAME",
            default=None,
            help="the profile whose Batch account to use (default: $AZHPC_PROFILE or the "
            "config file's default; 'emulated' is the one `azhpc emulator start` runs)",
        )
        if name == "delete":
            sub.add_argument("pool_ids", nargs="*", metavar="ID", help="pool ids to delete")
            sub.add_argument(
                "--all-azhpc",
                action="store_true",
                help="delete every pool whose metadata says azhpc created it",
            )
    return parser


def _pools(args: argparse.Namespace) -> int:
    from azhpc.backends.batch.backend import BatchBackend
    from azhpc.backends.batch.cleanup import (
        delete_azhpc_pools,
        delete_pools,
        format_pools,
        list_pools,
    )

    if args.pools_command is None:
        _parser().parse_args(["pools", "--help"])
    if args.pools_command == "delete" and bool(args.pool_ids) == bool(args.all_azhpc):
        print("azhpc pools delete: give pool ids, or --all-azhpc (not both)", file=sys.stderr)
        return 2
    try:
        settings = resolve_settings(args.profile)
    except AzhpcError as error:
        print(f"azhpc pools: {error}", file=sys.stderr)
        return 2
    if settings.profile == "emulated" and discover() is None:
        # connect() would start an emulator of its own, which has no pools to show.
        print(
            "azhpc pools: no emulator is running, so there are no emulated pools (start one "
            "with `azhpc emulator start`)"
        )
        return 0
    try:
        with azhpc.connect(args.profile, progress=False) as session:
            backend = session.backend
            if not isinstance(backend, BatchBackend):
                print(
                    f"azhpc pools: the {settings.name!r} profile has no Batch account (set "
                    "batch_url, or use --profile emulated)",
                    file=sys.stderr,
                )
                return 2
            account = backend.account
            if args.pools_command == "list":
                print(format_pools(list_pools(account)))
                return 0
            if args.all_azhpc:
                deleted = delete_azhpc_pools(account)
            else:
                deleted = delete_pools(account, args.pool_ids)
            gone = "deleted" if account.emulated else "deleting (Batch takes a few minutes)"
    except AzhpcError as error:
        print(f"azhpc pools: {error}", file=sys.stderr)
        return 1
    for pool_id in deleted:
        print(f"pool {pool_id}: {gone}")
    if not deleted:
        print("no azhpc pools to delete")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from azhpc.backends.batch.doctor import doctor

    try:
        report = doctor(args.profile, vm_sizes=args.vm_sizes)
    except AzhpcError as error:
        print(f"azhpc doctor: {error}", file=sys.stderr)
        return 2
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "✔✘".encode(encoding)
        unicode = True
    except (UnicodeEncodeError, LookupError):
        unicode = False
    print(report.render(unicode=unicode))
    return 0 if report.ok else 1


def _emulator(action: str) -> int:

    try:
        if action == "start":
            state, started = workshop.start()
            print("azhpc emulator: " + ("started" if started else "already running"))
        elif action == "stop":
            stopped = workshop.stop()
            print("azhpc emulator: " + ("stopped" if stopped else "not running"))
            return 0
        else:
            state = discover()
            if state is None:
                print("azhpc emulator: not running (start it with `azhpc emulator start`)")
                return 3
            print(f"azhpc emulator: running, {state.health().get('pools', 0)} pool(s)")
    except workshop.WorkshopEmulatorError as error:
        print(f"azhpc emulator: {error}", file=sys.stderr)
        return 1
    print(f"  process: {state.pid}")
    print(f"  Batch:   {state.batch_url} (account {state.batch_account_name})")
    print(f"  Storage: http://127.0.0.1:{state.azurite_port}/devstoreaccount1 (Azurite)")
    print(f"  keys:    in {state_path()} (readable by you only)")
    print("azhpc.connect('emulated') on this machine uses them; stop: `azhpc emulator stop`")
    return 0


def _usql_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.parallelism < 1:
        print("azhpc usql run: --parallelism takes a whole number >= 1", file=sys.stderr)
        return 2
    try:
        text = Path(args.script).read_text(encoding="utf-8-sig")
    except OSError as error:
        print(f"{args.script}:0:0: E_AZHPC_USQL_SCRIPT: cannot read: {error}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as error:
        print(_not_utf8(args.script, error), file=sys.stderr)
        return 2
    try:
        params = parse_params(args.param, text)
    except ValueError as error:
        print(f"azhpc usql run: {error}", file=sys.stderr)
        return 2
    lake = script_lake(args.lake_root or resolve_settings("local").lake_root)
    session = None
    try:
        if args.parallelism > 1:
            session = azhpc.connect(workers=args.parallelism, progress=False)
        job = run(
            text,
            params=params,
            parallelism=args.parallelism,
            pool=session,
            name=args.script,
            lake=lake,
        )
    except UsqlError as error:
        print(str(error), file=sys.stderr)
        return 1
    finally:
        if session is not None:
            session.close()
    for path, rows in job.outputs.items():
        print(f"{path}\t{rows} rows\t{lake.local_path(path)}")
    print(f"{job.state.value}/{job.outcome.value} in {job.progress.elapsed:.2f} s")
    return 0


def _not_utf8(script: str, error: UnicodeDecodeError) -> str:
    """``SCRIPT:LINE:COL: E_AZHPC_USQL_SCRIPT: ...`` for a script that is not UTF-8 text."""
    data = bytes(error.object)
    start = error.start
    line = data.count(b"\n", 0, start) + 1
    before = data[data.rfind(b"\n", 0, start) + 1 : start]  # this line up to the bad byte
    column = len(before.decode("utf-8", errors="replace").lstrip("\ufeff")) + 1
    return (
        f"{script}:{line}:{column}: E_AZHPC_USQL_SCRIPT: the script is not UTF-8 text: byte "
        f"0x{data[start]:02x} at line {line}, column {column} cannot be decoded "
        f"({error.reason}). U-SQL scripts are UTF-8: save it as UTF-8 in your editor, or "
        f"convert it, e.g. iconv -f cp1252 -t utf-8 {script} > converted.usql"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = _parser().parse_args(argv)
    if args.version:
        print(azhpc.__version__)
        return 0
    if args.command == "quickstart":
        try:
            return quickstart.run(workers=args.workers, rows=args.rows)
        except AzhpcError as error:
            print(f"azhpc: {error}", file=sys.stderr)
            return 1
    if args.command == "emulator":
        return _emulator(args.action)
    if args.command == "pools":
        return _pools(args)
    if args.command == "doctor":
        return _doctor(args)
    if args.command == "usql":
        if args.usql_command == "run":
            return _usql_run(args)
        _parser().parse_args(["usql", "--help"])
    _parser().print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
