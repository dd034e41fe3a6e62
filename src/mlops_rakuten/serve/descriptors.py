"""How many connections a server process has file descriptors for (serve/connections.py makes room beyond)."""

from __future__ import annotations

import functools
import resource

# File descriptors kept for everything but client connections: the listening socket, the model and
# users files, logs, `dvc` subprocesses' pipes during /ingest and /train.
RESERVED_DESCRIPTORS = 48


def raise_descriptor_limit() -> None:
    """Raise this process's open-file limit to its hard maximum (`rakuten serve` does, before its workers start)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass  # a container may forbid it: the soft limit it left then decides


@functools.cache  # read at the first connection: after `rakuten serve` has raised the limit
def max_connections() -> int:
    """The connections this process has descriptors for, beyond those it keeps for itself."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = 1 << 16 if soft == resource.RLIM_INFINITY else min(soft, 1 << 16)
    return max(8, soft - RESERVED_DESCRIPTORS)
