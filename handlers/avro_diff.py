"""Avro schema comparison for the schema-registry runbook (SR-3 and SR-4).

``field_changes(old, new)`` lists what changed between two versions, field by field
(nested records by dotted path), and marks the changes the runbook calls breaking: a
required field removed, a field's type changed, a field added without a default.

``compatibility_problems(mode, candidate, latest)`` predicts what Streamhouse's registry
will say when ``candidate`` is registered after ``latest``. Upstream has no compatibility
route, so the bot checks itself, the way the registry does (streamhouse-facts.md §4.3,
``compatibility.rs``): only the latest version is checked (transitive modes behave like
the plain ones) and BACKWARD runs the *old* schema as the reader of new data (FORWARD the
new one), which is why removing a required field fails under BACKWARD, as the runbook says.
Reading follows the Avro resolution rules: fields match by name or reader alias, a reader
field the writer lacks needs a default, primitives match or promote, records, arrays,
maps, enums, fixed and unions resolve element-wise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

PRIMITIVES: Final = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
# writer type -> reader types that can read it besides itself
PROMOTIONS: Final[Mapping[str, frozenset[str]]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
MODES: Final = (
    "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
    "FULL", "FULL_TRANSITIVE", "NONE",
)  # fmt: skip
_NAMED: Final = ("record", "error", "enum", "fixed")
ChangeKind = Literal["removed", "added", "type_changed"]


class InvalidSchemaError(ValueError):
    """The text is not an Avro schema the registry would accept."""


@dataclass(frozen=True)
class Schema:
    """A parsed Avro schema: its JSON tree and its named types by full and short name."""

    root: Any
    names: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def resolve(self, node: Any) -> Any:
        """``node`` with a named-type reference replaced by its definition."""
        if isinstance(node, str) and node not in PRIMITIVES:
            return self.names.get(node, node)
        if isinstance(node, dict) and isinstance(node.get("type"), (str, list, dict)):
            kind = node["type"]
            if kind not in (*_NAMED, "array", "map"):
                return self.resolve(kind)  # {"type": "long", "logicalType": ...}
        return node


@dataclass(frozen=True)
class FieldChange:
    """One field's change between two versions; ``breaking`` per the runbook's list."""

    kind: ChangeKind
    path: str
    detail: str
    breaking: bool

    def to_json(self) -> dict[str, Any]:
        """The change as evidence."""
        return {
            "change": self.kind,
            "field": self.path,
            "detail": self.detail,
            "breaking": self.breaking,
        }


def parse(text: str) -> Schema:
    """Parse an Avro schema (JSON text); raise ``InvalidSchemaError`` saying what is wrong."""
    try:
        root = json.loads(text)
    except ValueError as error:
        raise InvalidSchemaError(f"not JSON ({error})") from error
    names: dict[str, Mapping[str, Any]] = {}
    _collect(root, "", names)
    return Schema(root, names)


def _collect(node: Any, namespace: str, names: dict[str, Mapping[str, Any]]) -> None:
    if isinstance(node, list):
        for branch in node:
            _collect(branch, namespace, names)
        return
    if isinstance(node, str):
        if node not in PRIMITIVES and node not in names:
            raise InvalidSchemaError(f"unknown type {node!r}")
        return
    if not isinstance(node, dict) or "type" not in node:
        raise InvalidSchemaError("every type needs a 'type' attribute")
    kind = node["type"]
    if kind in _NAMED:
        _collect_named(node, namespace, names)
    elif kind == "array":
        _collect(node.get("items"), namespace, names)
    elif kind == "map":
        _collect(node.get("values"), namespace, names)
    else:
        _collect(kind, namespace, names)


def _collect_named(node: dict[str, Any], namespace: str, names: dict[str, Any]) -> None:
    name = node.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidSchemaError(f"a {node['type']} needs a name")
    space = node.get("namespace", namespace)
    full = name if "." in name or not space else f"{space}.{name}"
    names[full] = names[full.rpartition(".")[2]] = node
    if node["type"] in ("record", "error"):
        fields = node.get("fields")
        if not isinstance(fields, list):
            raise InvalidSchemaError(f"record {full!r} needs a list of fields")
        for item in fields:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise InvalidSchemaError(f"a field of {full!r} has no name")
            if "type" not in item:
                raise InvalidSchemaError(f"field {item['name']!r} of {full!r} has no type")
            _collect(item["type"], full.rpartition(".")[0], names)


def record_name(schema: Schema) -> str | None:
    """The top-level record's short name (``Order``), if the schema is a record."""
    root = schema.resolve(schema.root)
    if isinstance(root, dict) and root.get("type") in ("record", "error"):
        return str(root["name"]).rpartition(".")[2]
    return None


def type_label(schema: Schema, node: Any) -> str:
    """A short human name for a type: ``string``, ``record Order``, ``array<int>``."""
    node = schema.resolve(node)
    if isinstance(node, list):
        return "union[" + ",".join(type_label(schema, branch) for branch in node) + "]"
    if isinstance(node, str):
        return node
    kind = node["type"]
    if kind in _NAMED:
        return f"{kind} {str(node['name']).rpartition('.')[2]}"
    if kind == "array":
        return f"array<{type_label(schema, node['items'])}>"
    return f"map<{type_label(schema, node['values'])}>"


# -- SR-3: what changed between two versions -------------------------------------------------
def field_changes(old: Schema, new: Schema) -> list[FieldChange]:
    """Field-level changes from ``old`` to ``new`` (nested records by dotted path)."""
    return list(_record_changes(old, new, old.resolve(old.root), new.resolve(new.root), ""))


def _is_record(node: Any) -> bool:
    return isinstance(node, dict) and node.get("type") in ("record", "error")


def _record_changes(
    old: Schema, new: Schema, before: Any, after: Any, path: str
) -> Iterator[FieldChange]:
    if not (_is_record(before) and _is_record(after)):
        return
    old_fields = {item["name"]: item for item in before["fields"]}
    new_fields = {item["name"]: item for item in after["fields"]}
    for name, item in old_fields.items():
        where = f"{path}{name}"
        if name not in new_fields:
            required = "default" not in item
            what = "required field removed" if required else "optional field removed"
            yield FieldChange("removed", where, what, breaking=required)
            continue
        yield from _type_change(old, new, item["type"], new_fields[name]["type"], where)
    for name, item in new_fields.items():
        if name not in old_fields:
            required = "default" not in item
            what = "field added without a default" if required else "field added with a default"
            yield FieldChange("added", f"{path}{name}", what, breaking=required)


def _type_change(
    old: Schema, new: Schema, before: Any, after: Any, where: str
) -> Iterator[FieldChange]:
    was, now = old.resolve(before), new.resolve(after)
    if _is_record(was) and _is_record(now):
        yield from _record_changes(old, new, was, now, f"{where}.")
        return
    was_label, now_label = type_label(old, was), type_label(new, now)
    if was_label != now_label:
        detail = f"type changed from {was_label} to {now_label}"
        yield FieldChange("type_changed", where, detail, breaking=True)


# -- SR-4: would the registry accept a candidate ---------------------------------------------
def compatibility_problems(mode: str, candidate: Schema, latest: Schema) -> list[str]:
    """Why the registry would refuse ``candidate`` after ``latest`` under ``mode``."""
    base = mode.upper().removesuffix("_TRANSITIVE")
    if base not in ("BACKWARD", "FORWARD", "FULL", "NONE"):
        raise ValueError(f"unknown compatibility mode {mode!r}")
    problems: list[str] = []
    if base in ("BACKWARD", "FULL"):  # Streamhouse: the old schema reads new data
        problems += read_problems(reader=latest, writer=candidate, reader_is_new=False)
    if base in ("FORWARD", "FULL"):
        problems += read_problems(reader=candidate, writer=latest, reader_is_new=True)
    return list(dict.fromkeys(problems))


def read_problems(reader: Schema, writer: Schema, *, reader_is_new: bool) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader`` (empty: it can)."""
    resolver = _Resolver(reader, writer, reader_is_new)
    return list(resolver.problems(reader.root, writer.root, ""))


@dataclass
class _Resolver:
    """One reader/writer pair; problems are phrased as evolution from old to new."""

    reader: Schema
    writer: Schema
    reader_is_new: bool
    seen: set[tuple[str, str]] = field(default_factory=set)

    def problems(self, reader: Any, writer: Any, path: str) -> Iterator[str]:
        r, w = self.reader.resolve(reader), self.writer.resolve(writer)
        if isinstance(w, list):
            for branch in w:
                yield from self.problems(r, branch, path)
        elif isinstance(r, list):
            if all(list(self.problems(branch, w, path)) for branch in r):
                written = type_label(self.writer, w)
                yield f"{_where(path)}: {written} is not in the union any more"
        else:
            yield from self.same_kind(r, w, path)

    def same_kind(self, r: Any, w: Any, path: str) -> Iterator[str]:
        r_label, w_label = type_label(self.reader, r), type_label(self.writer, w)
        r_kind = r if isinstance(r, str) else r["type"]
        w_kind = w if isinstance(w, str) else w["type"]
        if r_kind != w_kind:
            if w_kind not in PROMOTIONS or r_kind not in PROMOTIONS[w_kind]:
                yield self.changed(path, r_label, w_label)
        elif r_kind == "array":
            yield from self.problems(r["items"], w["items"], f"{path}[]")
        elif r_kind == "map":
            yield from self.problems(r["values"], w["values"], f"{path}{{}}")
        elif r_kind == "enum":
            missing = [s for s in w["symbols"] if s not in r["symbols"]]
            if missing and "default" not in r:
                yield f"{_where(path)}: enum symbols {missing} are missing"
        elif r_kind == "fixed" and r["size"] != w["size"]:
            yield self.changed(path, r_label + f"({r['size']})", w_label + f"({w['size']})")
        elif r_kind in ("record", "error"):
            yield from self.record(r, w, path)

    def changed(self, path: str, reader_label: str, writer_label: str) -> str:
        old, new = (
            (writer_label, reader_label) if self.reader_is_new else (reader_label, writer_label)
        )
        return f"{_where(path)}: type changed from {old} to {new}"

    def record(self, r: Mapping[str, Any], w: Mapping[str, Any], path: str) -> Iterator[str]:
        pair = (str(r["name"]), str(w["name"]))
        if pair in self.seen:  # a recursive type already being checked
            return
        self.seen.add(pair)
        written = {item["name"]: item for item in w["fields"]}
        for item in r["fields"]:
            names = [item["name"], *item.get("aliases", [])]
            match = next((written[n] for n in names if n in written), None)
            where = f"{path}.{item['name']}" if path else item["name"]
            if match is not None:
                yield from self.problems(item["type"], match["type"], where)
            elif "default" not in item:
                verb = "added" if self.reader_is_new else "removed"
                yield f"field '{where}' {verb} without a default"
        self.seen.discard(pair)


def _where(path: str) -> str:
    return f"field '{path}'" if path else "the schema"
