"""``python -m azhpc.worker``: the process a node runs.

Usage::

    python -m azhpc.worker node      # a local backend node (pipes)
    python -m azhpc.worker batch     # one Batch task (its working folder)
    python -m azhpc.worker prepare-node RECORD  # a Batch start task's last step: the
                                     # node's signing key and its environment record

Both are thin wrappers: :func:`azhpc.backends.local.node.main` and
:func:`azhpc.core.worker.run_batch_task` are ordinary functions that tests call directly.
"""

from __future__ import annotations

import sys

from azhpc.backends.local.node import main as node_main
from azhpc.core.worker import run_batch_task

USAGE = __doc__.split("Usage::", 1)[1].split("Both are", 1)[0]


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the node loop or to a Batch task; return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["node"]:
        node_main()
        return 0
    if args == ["batch"]:
        return run_batch_task()
    if len(args) == 2 and args[0] == "prepare-node":
        from azhpc.core.node_signing import node_key_path, prepare_node

        prepare_node(args[1], node_key_path())
        return 0
    print(f"usage:{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
