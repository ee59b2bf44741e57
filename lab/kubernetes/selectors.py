"""Label and field selectors, parsed and matched the way the API server does.

Label selectors: ``a=b``, ``a==b``, ``a!=b``, ``a in (x,y)``, ``a notin (x,y)``, ``a``
(exists), ``!a`` (does not exist), joined by commas (AND). Field selectors: ``f=v``,
``f==v``, ``f!=v`` over a per-resource set of supported fields; any other field is a 400,
as on a real cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from lab.kubernetes.errors import ApiError, bad_request

Matcher = Callable[[Mapping[str, str]], bool]

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s+\((.*)\)$")
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|!=|=)\s*([-A-Za-z0-9_.]*)$")
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")

COMMON_FIELDS = frozenset({"metadata.name", "metadata.namespace"})
POD_FIELDS = COMMON_FIELDS | {
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
}
EVENT_FIELDS = COMMON_FIELDS | {
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
}


def split_requirements(selector: str) -> list[str]:
    """Split on the commas that are not inside ``( )``."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _requirement(text: str) -> Matcher:
    if match := _SET.match(text):
        key, operator, listed = match.groups()
        values = {value.strip() for value in listed.split(",") if value.strip()}
        if not values:
            raise bad_request(f"unable to parse requirement: {text}: values set can't be empty")
        if operator == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if match := _EQUALITY.match(text):
        key, operator, value = match.groups()
        if operator == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS.match(text):
        negated, key = match.group(1) == "!", match.group(2)
        return lambda labels: (key in labels) != negated
    raise bad_request(f"unable to parse requirement: {text!r}: found unexpected token")


def parse_label_selector(selector: str | None) -> Matcher:
    """A predicate over an object's labels; an empty selector matches everything."""
    requirements = [_requirement(part) for part in split_requirements(selector or "")]
    return lambda labels: all(requirement(labels) for requirement in requirements)


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """The string form of a dotted field (``spec.nodeName``), ``""`` when absent."""
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return str(value.get("component", ""))  # ``source`` selects on its component
    return "" if value is None else str(value)


def parse_field_selector(
    selector: str | None, supported: frozenset[str]
) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate over a rendered object; unsupported fields are a 400 like the API's."""
    checks: list[tuple[str, bool, str]] = []
    for part in split_requirements(selector or ""):
        match = re.match(r"^([A-Za-z.]+)\s*(==|!=|=)\s*(.*)$", part)
        if match is None:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{part}'")
        field, operator, value = match.groups()
        if field not in supported:
            raise ApiError(400, "BadRequest", f'field label not supported: "{field}"')
        checks.append((field, operator == "!=", value))
    return lambda obj: all((field_value(obj, f) == v) != negate for f, negate, v in checks)
