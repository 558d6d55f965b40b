"""Free ports for the servers tests and benchmarks start: outside the kernel's ephemeral
range and the local stacks' ports, and bindable when chosen."""

import socket

import pytest

from threadline.devtools import ports
from threadline.devtools.ports import CHOSEN_FROM, free_ports


def test_ports_are_distinct_bindable_and_outside_the_ephemeral_range_and_the_stacks() -> None:
    chosen = free_ports(20)
    assert len(set(chosen)) == 20
    for port in chosen:
        assert port in CHOSEN_FROM
        assert not 32768 <= port <= 60999
        assert port != 27017  # the local stack's MongoDB, inside CHOSEN_FROM
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = free_ports(2)
    monkeypatch.setattr(ports, "CHOSEN_FROM", range(first, first + 1))
    with socket.socket() as held:
        held.bind(("127.0.0.1", first))
        held.listen()
        with pytest.raises(RuntimeError, match="fewer than 1 free ports"):
            free_ports(1)
    monkeypatch.setattr(ports, "CHOSEN_FROM", range(second, second + 1))
    assert free_ports(1) == [second]
