"""``python -m azhpc.worker``: the process a node runs.

Usage::

    python -m azhpc.worker node                          # a local backend node (pipes)
    python -m azhpc.worker run FUNCTION INPUT OUTCOME    # one storage-staged task (files)
    python -m azhpc.worker batch                         # one Batch task (its working folder)

Both are thin wrappers: :func:`azhpc.backends.local_node.serve` and
:func:`azhpc.core.worker.run_files` are ordinary functions that tests call directly.
"""

from __future__ import annotations

import sys

USAGE = __doc__.split("Usage::", 1)[1].split("Both are", 1)[0]


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the node loop or to a single file-staged task; return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["node"] and len(args) == 1:
        from azhpc.backends.local_node import main as node_main

        node_main()
        return 0
    if args[:1] == ["run"] and len(args) == 4:
        from azhpc.core.worker import run_files

        return run_files(*args[1:])
    if args == ["batch"]:
        from azhpc.core.worker import run_batch_task

        return run_batch_task()
    print(f"usage:{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
