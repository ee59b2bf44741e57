"""A small, real Avro schema-resolution check, for the lab's schema registry.

``parse`` validates an Avro schema (JSON text) and ``read_problems(reader, writer)`` lists why
data written with ``writer`` cannot be read with ``reader`` under the Avro specification's
resolution rules: records match by name and fields by name (or reader alias); a reader field
missing from the writer needs a default; enums need the writer's symbols (or a reader
default); fixed sizes must agree; arrays, maps and unions resolve element-wise; primitives
match or promote (int→long→float→double, string↔bytes).

``compatibility_problems(mode, new, old)`` applies a registry mode to the latest version only
(the transitive modes behave like the plain ones, as upstream's ``compatibility.rs`` does):

    BACKWARD  the new schema reads old data      FORWARD  the old schema reads new data
    FULL      both                               NONE     no check

``swapped=True`` reproduces Streamhouse's ``compatibility.rs``, whose BACKWARD check runs the
old schema as the reader (and FORWARD the new one), the reverse of the Avro/Confluent meaning:
it rejects removing a required field under BACKWARD and accepts adding one without a default.
(Streamhouse also compares nested non-primitive field types only for equality; this module
applies the full resolution rules instead.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

PRIMITIVES: Final = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
MODES: Final = (
    "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
    "FULL", "FULL_TRANSITIVE", "NONE",
)  # fmt: skip
_NAMED: Final = ("record", "error", "enum", "fixed")
_COMPLEX: Final = (*_NAMED, "array", "map")
# writer type -> reader types that can read it (besides itself)
PROMOTIONS: Final[Mapping[str, frozenset[str]]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


class InvalidSchema(ValueError):
    """The text is not a valid Avro schema."""


@dataclass
class Schema:
    """A parsed Avro schema: its JSON tree and the named types it defines, by full name."""

    root: Any
    names: dict[str, dict[str, Any]] = field(default_factory=dict)


def parse(text: str) -> Schema:
    """Parse and validate an Avro schema; raise ``InvalidSchema`` with the reason."""
    try:
        root = json.loads(text)
    except ValueError as exc:
        raise InvalidSchema(f"Invalid Avro schema: not JSON ({exc})") from exc
    schema = Schema(root)
    _define(schema, root, namespace="")
    return schema


def _fullname(node: Mapping[str, Any], namespace: str) -> str:
    name = str(node["name"])
    space = node.get("namespace", namespace)
    return name if "." in name or not space else f"{space}.{name}"


def _define(schema: Schema, node: Any, namespace: str) -> None:
    """Walk ``node``, registering named types and rejecting what Avro rejects."""
    if isinstance(node, str):
        if node not in PRIMITIVES and _lookup(schema, node, namespace) is None:
            raise InvalidSchema(f"Invalid Avro schema: unknown type '{node}'")
        return
    if isinstance(node, list):
        if any(isinstance(branch, list) for branch in node):
            raise InvalidSchema("Invalid Avro schema: a union cannot directly contain a union")
        for branch in node:
            _define(schema, branch, namespace)
        return
    if not isinstance(node, dict) or "type" not in node:
        raise InvalidSchema("Invalid Avro schema: a type needs a 'type' attribute")
    kind = node["type"]
    if kind in _NAMED:
        _define_named(schema, node, namespace)
    elif kind == "array":
        _define(schema, node.get("items"), namespace)
    elif kind == "map":
        _define(schema, node.get("values"), namespace)
    else:
        _define(schema, kind, namespace)


def _define_named(schema: Schema, node: dict[str, Any], namespace: str) -> None:
    if not isinstance(node.get("name"), str) or not node["name"]:
        raise InvalidSchema(f"Invalid Avro schema: a {node['type']} needs a name")
    fullname = _fullname(node, namespace)
    if fullname in schema.names:
        raise InvalidSchema(f"Invalid Avro schema: '{fullname}' is defined twice")
    schema.names[fullname] = node
    inner = fullname.rpartition(".")[0]
    if node["type"] == "enum" and not _is_str_list(node.get("symbols")):
        raise InvalidSchema(f"Invalid Avro schema: enum '{fullname}' needs a list of symbols")
    if node["type"] == "fixed" and not isinstance(node.get("size"), int):
        raise InvalidSchema(f"Invalid Avro schema: fixed '{fullname}' needs an integer size")
    if node["type"] in ("record", "error"):
        fields = node.get("fields")
        if not isinstance(fields, list):
            raise InvalidSchema(f"Invalid Avro schema: record '{fullname}' needs a fields list")
        for item in fields:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise InvalidSchema(f"Invalid Avro schema: a field of '{fullname}' has no name")
            if "type" not in item:
                raise InvalidSchema(f"Invalid Avro schema: field '{item['name']}' has no type")
            _define(schema, item["type"], inner)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _lookup(schema: Schema, name: str, namespace: str) -> dict[str, Any] | None:
    if "." not in name and namespace and f"{namespace}.{name}" in schema.names:
        return schema.names[f"{namespace}.{name}"]
    return schema.names.get(name)


def _kind(node: Any) -> str:
    """``"union"``, a primitive name, or the complex type's name."""
    if isinstance(node, list):
        return "union"
    if isinstance(node, dict):
        kind = node["type"]
        return _kind(kind) if isinstance(kind, (dict, list)) else str(kind)
    return str(node)


def _label(path: str) -> str:
    return f"field '{path}'" if path else "the schema"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


@dataclass
class _Resolver:
    """Checks one reader/writer pair; ``seen`` holds the record pairs being checked.

    Problems are phrased as schema evolution (old → new); ``reader_is_new`` says which of
    the two schemas is the reader.
    """

    reader: Schema
    writer: Schema
    reader_is_new: bool = True
    seen: set[tuple[str, str]] = field(default_factory=set)

    def deref(self, schema: Schema, node: Any) -> Any:
        if isinstance(node, str) and node not in PRIMITIVES:
            return _lookup(schema, node, "") or next(
                (n for full, n in schema.names.items() if full.rpartition(".")[2] == node), node
            )
        if isinstance(node, dict) and node["type"] not in _COMPLEX:
            return self.deref(schema, node["type"])  # {"type": "long", "logicalType": ...}
        return node

    def changed(self, path: str, what: str, reader_value: object, writer_value: object) -> str:
        old, new = (
            (writer_value, reader_value) if self.reader_is_new else (reader_value, writer_value)
        )
        return f"{_label(path)}: {what} changed from {old} to {new}"

    def problems(self, reader: Any, writer: Any, path: str) -> Iterator[str]:
        r, w = self.deref(self.reader, reader), self.deref(self.writer, writer)
        if isinstance(w, list):
            for branch in w:
                yield from self.problems(r, branch, path)
        elif isinstance(r, list):
            if not any(not list(self.problems(b, w, path)) for b in r):
                roles = ("new", "old") if self.reader_is_new else ("old", "new")
                yield f"{_label(path)}: the {roles[0]} union cannot hold the {roles[1]} {_kind(w)}"
        else:
            yield from self.same_kind(r, w, path)

    def same_kind(self, r: Any, w: Any, path: str) -> Iterator[str]:
        rk, wk = _kind(r), _kind(w)
        if wk in PRIMITIVES or rk in PRIMITIVES:
            if rk != wk and rk not in PROMOTIONS.get(wk, frozenset()):
                yield self.changed(path, "type", rk, wk)
        elif rk != wk:
            yield self.changed(path, "type", rk, wk)
        elif rk == "array":
            yield from self.problems(r["items"], w["items"], f"{path}[]")
        elif rk == "map":
            yield from self.problems(r["values"], w["values"], f"{path}{{}}")
        else:
            yield from self.named(r, w, path)

    def named(self, r: dict[str, Any], w: dict[str, Any], path: str) -> Iterator[str]:
        r_name, w_name = str(r["name"]).rpartition(".")[2], str(w["name"]).rpartition(".")[2]
        if r_name != w_name and w_name not in r.get("aliases", []):
            yield self.changed(path, f"{r['type']} name", r_name, w_name)
        elif r["type"] == "enum":
            missing = [s for s in w["symbols"] if s not in r["symbols"]]
            if missing and "default" not in r:
                verb = "removed" if self.reader_is_new else "added"
                yield f"{_label(path)}: enum symbols {missing} {verb}"
        elif r["type"] == "fixed":
            if r["size"] != w["size"]:
                yield self.changed(path, "fixed size", r["size"], w["size"])
        elif (r_name, w_name) not in self.seen:  # a recursive type: already being checked
            self.seen.add((r_name, w_name))
            yield from self.record(r, w, path)
            self.seen.discard((r_name, w_name))

    def record(self, r: dict[str, Any], w: dict[str, Any], path: str) -> Iterator[str]:
        written = {f["name"]: f for f in w["fields"]}
        for reader_field in r["fields"]:
            names = [reader_field["name"], *reader_field.get("aliases", [])]
            match = next((written[n] for n in names if n in written), None)
            where = _join(path, reader_field["name"])
            if match is not None:
                yield from self.problems(reader_field["type"], match["type"], where)
            elif "default" not in reader_field:
                verb = "added" if self.reader_is_new else "removed"
                yield f"field '{where}' {verb} without a default"


def read_problems(reader: Schema, writer: Schema, *, reader_is_new: bool = True) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (empty: it can)."""
    resolver = _Resolver(reader, writer, reader_is_new)
    return list(resolver.problems(reader.root, writer.root, ""))


def compatibility_problems(
    mode: str, new: Schema, old: Schema, *, swapped: bool = False
) -> list[str]:
    """Why ``new`` may not follow ``old`` under ``mode`` (see the module docstring)."""
    if mode not in MODES:
        raise ValueError(f"unknown compatibility mode {mode!r}")
    base = mode.removesuffix("_TRANSITIVE")
    new_reads = base in ("BACKWARD", "FULL") if not swapped else base in ("FORWARD", "FULL")
    old_reads = base in ("FORWARD", "FULL") if not swapped else base in ("BACKWARD", "FULL")
    problems: list[str] = []
    if new_reads:
        problems += read_problems(new, old, reader_is_new=True)
    if old_reads:
        problems += read_problems(old, new, reader_is_new=False)
    return list(dict.fromkeys(problems))
