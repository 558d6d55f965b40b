"""The backward-compatibility checker catches each kind of break and passes safe changes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel

from threadline.contracts.compat import breaking_changes


def _diff(old: type[BaseModel], new: type[BaseModel]) -> list[str]:
    return breaking_changes(old.model_json_schema(), new.model_json_schema())


class Inner(BaseModel):
    user_id: str
    kind: Literal["staff", "client"]


class Base(BaseModel):
    name: str
    count: int
    when: str
    inner: Inner
    items: list[Inner]
    maybe: Inner | None = None


def test_identical_schemas_are_compatible() -> None:
    assert _diff(Base, Base) == []


def test_adding_an_optional_property_is_compatible() -> None:
    class New(Base):
        note: str | None = None
        tags: list[str] = []

    assert _diff(Base, New) == []


def test_adding_an_enum_value_is_compatible() -> None:
    class NewInner(BaseModel):
        user_id: str
        kind: Literal["staff", "client", "system"]

    class New(Base):
        inner: NewInner

    assert _diff(Base, New) == []


def test_removed_property_is_caught() -> None:
    class Old(BaseModel):
        name: str
        count: int

    class New(BaseModel):
        name: str

    assert _diff(Old, New) == ["count: property removed"]


def test_removed_optional_property_is_caught() -> None:
    class Old(BaseModel):
        name: str
        note: str | None = None

    class New(BaseModel):
        name: str

    assert _diff(Old, New) == ["note: property removed"]


def test_changed_type_is_caught() -> None:
    class New(BaseModel):
        name: str
        count: str
        when: str
        inner: Inner
        items: list[Inner]
        maybe: Inner | None = None

    assert _diff(Base, New) == ["count: type changed from ['integer'] to ['string']"]


def test_becoming_nullable_is_a_type_change() -> None:
    class Old(BaseModel):
        name: str

    class New(BaseModel):
        name: str | None

    assert _diff(Old, New) == ["name: type changed from ['string'] to ['null', 'string']"]


def test_changed_format_is_a_type_change() -> None:
    class Old(BaseModel):
        when: str

    class New(BaseModel):
        when: datetime

    assert _diff(Old, New) == ["when: type changed from ['string'] to ['string:date-time']"]


def test_new_required_property_is_caught() -> None:
    class New(Base):
        extra: int

    assert _diff(Base, New) == ["extra: new required property"]


def test_optional_property_becoming_required_is_caught() -> None:
    class Old(BaseModel):
        note: str = ""

    class New(BaseModel):
        note: str

    assert _diff(Old, New) == ["note: new required property"]


def test_removed_enum_value_is_caught() -> None:
    class Old(BaseModel):
        mode: Literal["new_thread", "reply_to_latest"]

    class New(BaseModel):
        mode: Literal["new_thread"]

    assert _diff(Old, New) == ["mode: enum value 'reply_to_latest' removed"]


def test_removed_str_enum_member_is_caught_through_refs() -> None:
    class OldReason(StrEnum):
        READ = "all_read"
        REPLIED = "client_replied"

    class NewReason(StrEnum):
        READ = "all_read"

    class Old(BaseModel):
        reason: OldReason

    class New(BaseModel):
        reason: NewReason

    assert _diff(Old, New) == ["reason: enum value 'client_replied' removed"]


def test_restricting_a_free_value_to_an_enum_is_caught() -> None:
    class Old(BaseModel):
        mode: str

    class New(BaseModel):
        mode: Literal["a", "b"]

    assert _diff(Old, New) == ["mode: restricted to enum values ['a', 'b']"]


def test_breaks_inside_nested_models_lists_and_unions_are_caught_with_their_path() -> None:
    class NewInner(BaseModel):
        user_id: int
        kind: Literal["staff"]

    class New(BaseModel):
        name: str
        count: int
        when: str
        inner: NewInner
        items: list[NewInner]
        maybe: NewInner | None = None

    assert _diff(Base, New) == [
        "inner.kind: enum value 'client' removed",
        "inner.user_id: type changed from ['string'] to ['integer']",
        "items[].kind: enum value 'client' removed",
        "items[].user_id: type changed from ['string'] to ['integer']",
        "maybe.kind: enum value 'client' removed",
        "maybe.user_id: type changed from ['string'] to ['integer']",
    ]


def test_map_values_are_compared() -> None:
    class Old(BaseModel):
        counts: dict[str, int]

    class New(BaseModel):
        counts: dict[str, str]

    assert _diff(Old, New) == ["counts{}: type changed from ['integer'] to ['string']"]


def test_recursive_schemas_terminate() -> None:
    class OldNode(BaseModel):
        label: str
        children: list[OldNode] = []

    class NewNode(BaseModel):
        children: list[NewNode] = []

    assert _diff(OldNode, NewNode) == ["label: property removed"]


def test_changed_envelope_constant_is_caught() -> None:
    old = {"type": "object", "properties": {"type": {"type": "string", "const": "a.b.c"}}}
    new = {"type": "object", "properties": {"type": {"type": "string", "const": "a.b.d"}}}

    assert breaking_changes(old, new) == ["type: enum value 'a.b.c' removed"]
