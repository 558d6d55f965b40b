"""Typed app.state dependencies: the wired object, or a loud wiring error."""

from types import SimpleNamespace

import pytest

from threadline.kit.http import from_state


class Service:
    pass


def request_with(**state: object) -> object:
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(**state)))


def test_returns_the_wired_object_of_the_declared_type() -> None:
    service = Service()
    assert from_state("threads", Service)(request_with(threads=service)) is service  # type: ignore[arg-type]


@pytest.mark.parametrize("state", [{}, {"threads": "not a service"}])
def test_a_missing_or_mistyped_entry_is_a_wiring_error(state: dict[str, object]) -> None:
    with pytest.raises(TypeError, match=r"app\.state\.threads"):
        from_state("threads", Service)(request_with(**state))  # type: ignore[arg-type]
