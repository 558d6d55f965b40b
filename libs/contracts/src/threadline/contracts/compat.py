"""Backward-compatibility check between a released JSON Schema and the current one.

Events stay in Kafka for their retention period and consumers upgrade one at a time, so
within one schema version an event must stay readable both ways: new consumers read old
events and old consumers read new ones. That allows adding optional properties and enum
values, because the decoder tolerates both: models ignore unknown fields, and every enum
field is ``Extensible`` so ``decode`` keeps a value its model does not list (a test checks
that no event model has a closed enum); it forbids

- removing a property,
- changing a property's type (including making it nullable, or changing its format),
- adding a required property (or making an optional one required),
- removing an enum value (or restricting a free value to an enum).

The checker walks both schemas side by side, following ``$ref`` within each document, and
reports each break with its path, e.g. ``data.author.kind: enum value 'client' removed``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["breaking_changes"]

Schema = dict[str, Any]
_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}


def breaking_changes(released: Schema, current: Schema) -> list[str]:
    """Every backward-incompatible difference from ``released`` to ``current``; empty if none."""
    return _Walk(released, current).compare(released, current, "")


def _resolve(node: Schema, root: Schema) -> Schema:
    """Follow local ``$ref`` pointers (``#/$defs/Actor``); single-item ``allOf`` too."""
    while True:
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        elif len(node.get("allOf", ())) == 1:
            node = node["allOf"][0]
        else:
            return node


def _values(node: Schema) -> list[Any] | None:
    """The allowed values of an ``enum`` or ``const`` node; None when unrestricted."""
    if "enum" in node:
        return list(node["enum"])
    if "const" in node:
        return [node["const"]]
    return None


def _types(node: Schema, root: Schema) -> frozenset[str]:
    """The JSON types a node accepts, with their ``format`` (``string:date-time``)."""
    node = _resolve(node, root)
    branches = node.get("anyOf") or node.get("oneOf")
    if branches:
        return frozenset().union(*(_types(branch, root) for branch in branches))
    declared = node.get("type")
    if declared is None:
        values = _values(node)
        if values is not None:
            declared = sorted({_JSON_TYPES.get(type(value), "object") for value in values})
        else:
            declared = "object" if "properties" in node else "any"
    names = declared if isinstance(declared, list) else [declared]
    fmt = node.get("format")
    return frozenset(f"{name}:{fmt}" if fmt else name for name in names)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


class _Walk:
    """One comparison of two documents, following shared definitions at every use."""

    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        # Node pairs on the current path: a recursive schema is compared once, not forever.
        self.open: set[tuple[int, int]] = set()

    def compare(self, old: Schema, new: Schema, path: str) -> list[str]:
        old, new = _resolve(old, self.old_root), _resolve(new, self.new_root)
        pair = (id(old), id(new))
        if pair in self.open:
            return []
        where = path or "(root)"
        old_types, new_types = _types(old, self.old_root), _types(new, self.new_root)
        if old_types != new_types:
            return [f"{where}: type changed from {sorted(old_types)} to {sorted(new_types)}"]
        self.open.add(pair)
        try:
            return [
                *self._enum(old, new, where),
                *self._properties(old, new, path),
                *self._children(old, new, path),
            ]
        finally:
            self.open.discard(pair)

    @staticmethod
    def _enum(old: Schema, new: Schema, where: str) -> list[str]:
        old_values, new_values = _values(old), _values(new)
        if new_values is None:
            return []
        if old_values is None:
            return [f"{where}: restricted to enum values {new_values}"]
        return [
            f"{where}: enum value {value!r} removed"
            for value in old_values
            if value not in new_values
        ]

    def _properties(self, old: Schema, new: Schema, path: str) -> list[str]:
        old_props: Schema = old.get("properties", {})
        new_props: Schema = new.get("properties", {})
        problems = [
            f"{_join(path, name)}: property removed" for name in old_props if name not in new_props
        ]
        added_required = set(new.get("required", ())) - set(old.get("required", ()))
        problems += [
            f"{_join(path, name)}: new required property" for name in sorted(added_required)
        ]
        for name in old_props.keys() & new_props.keys():
            problems += self.compare(old_props[name], new_props[name], _join(path, name))
        return sorted(problems)

    def _children(self, old: Schema, new: Schema, path: str) -> list[str]:
        """Array items, map values and the branches of a union, paired by their types."""
        problems = []
        if isinstance(old.get("items"), dict) and isinstance(new.get("items"), dict):
            problems += self.compare(old["items"], new["items"], f"{path}[]")
        if isinstance(old.get("additionalProperties"), dict) and isinstance(
            new.get("additionalProperties"), dict
        ):
            problems += self.compare(
                old["additionalProperties"], new["additionalProperties"], f"{path}{{}}"
            )
        new_branches = new.get("anyOf") or new.get("oneOf") or []
        for old_branch in old.get("anyOf") or old.get("oneOf") or []:
            old_types = _types(old_branch, self.old_root)
            for new_branch in new_branches:
                if _types(new_branch, self.new_root) == old_types:
                    problems += self.compare(old_branch, new_branch, path)
                    break
        return problems
