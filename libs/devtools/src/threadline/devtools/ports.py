"""Free loopback ports for the servers that tests and benchmarks start themselves.

Chosen below the kernel's ephemeral range (32768-60999 on Linux): a port the kernel hands
out (bind to port 0) is free when chosen but can be taken by any outgoing connection
before the server binds it — Kafka once failed to start so in the chaos test, on a port it
had been given a moment before. Ports the local stacks of this machine use are never
chosen.
"""

from __future__ import annotations

import random
import socket

from threadline.devtools.stack.config import DEFAULT_PORTS

__all__ = ["CHOSEN_FROM", "free_port", "free_ports"]

CHOSEN_FROM = range(20000, 28000)
_TAKEN = frozenset(DEFAULT_PORTS.values())
"""The local stack's default ports."""
_TAKEN_RANGES = (
    range(18000, 20000),
    range(28000, 30000),
    range(38017, 38018),
    range(54400, 54600),
    range(11025, 11026),
)
"""Ports the helpers' private stacks use."""


def free_ports(count: int) -> list[int]:
    """``count`` ports free right now, from ``CHOSEN_FROM`` at a random offset (so that
    two callers rarely try the same ones)."""
    offset = random.randrange(len(CHOSEN_FROM))  # noqa: S311 - spreads callers, no secret
    chosen: list[int] = []
    for step in range(len(CHOSEN_FROM)):
        port = CHOSEN_FROM[(offset + step) % len(CHOSEN_FROM)]
        if port in _TAKEN or any(port in taken for taken in _TAKEN_RANGES):
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"fewer than {count} free ports in {CHOSEN_FROM}")


def free_port() -> int:
    """One port free right now (see ``free_ports``)."""
    [port] = free_ports(1)
    return port
