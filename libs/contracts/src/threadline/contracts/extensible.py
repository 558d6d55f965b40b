"""Extensible enums: producers may add a value within a schema version; consumers keep it.

The compatibility check (``compat.py``) lets a schema version gain enum values, so a
consumer built on an older model can receive a value its ``Literal`` does not list. Every
enum field of an event model is therefore ``Annotated[Literal[...], Extensible]``: building
a model (what producers do) still accepts only the listed values, while :func:`decode`
keeps an unlisted string as it is instead of rejecting — and dead-lettering — the event.
A consumer must treat a value it does not know as "none of the ones I handle".
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError, ValidationInfo, ValidatorFunctionWrapHandler, WrapValidator

__all__ = ["DECODING", "Extensible"]

DECODING = "threadline.contracts.decoding"
"""Validation-context flag :func:`threadline.contracts.decode` sets."""


def _keep_unknown_value(
    value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
) -> Any:
    try:
        return handler(value)
    except ValidationError as exc:
        decoding = bool(info.context and info.context.get(DECODING))
        # An optional enum (``Literal[...] | None``) also reports that the value is not None.
        only_unlisted = all(
            error["type"] in {"literal_error", "none_required"} for error in exc.errors()
        )
        if decoding and only_unlisted and isinstance(value, str):
            return value
        raise


Extensible = WrapValidator(_keep_unknown_value)
