"""PATCH bodies applied to a rendered object, for the three content types clients send.

* ``application/json-patch+json`` (RFC 6902: add, remove, replace, test, move, copy);
* ``application/merge-patch+json`` (RFC 7386: objects merge, ``null`` deletes, lists
  are replaced);
* ``application/strategic-merge-patch+json``: like a merge patch, except that lists of
  containers, env, volumes, volume mounts and ports merge by their key (``name`` or
  ``containerPort``), ``{"$patch": "delete", name: ...}`` removes an item and
  ``$setElementOrder/...`` / ``$retainKeys`` directives are accepted and ignored.

A body that is not JSON (or not the shape its type requires) is a 400, as on a cluster;
a JSON patch operation that cannot apply is a 422.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from lab.kubernetes.errors import ApiError, bad_request, unsupported_media_type
from lab.kubernetes.meta import JsonObject

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
ACCEPTED = [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH]
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "name",
    "imagePullSecrets": "name",
    "ports": "containerPort",
    "conditions": "type",
}


def apply_patch(obj: JsonObject, content_type: str, raw: bytes) -> JsonObject:
    """``obj`` with the patch applied (``obj`` itself is left untouched)."""
    media = content_type.split(";")[0].strip().lower()
    if media not in ACCEPTED:
        raise unsupported_media_type(ACCEPTED)
    try:
        patch = json.loads(raw or b"null")
    except ValueError as exc:
        raise bad_request(f"error decoding patch: {exc}") from exc
    if media == JSON_PATCH:
        if not isinstance(patch, list):
            raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        return json_patch(obj, patch)
    if not isinstance(patch, dict):
        raise bad_request("error decoding patch: the patch must be a JSON object")
    merge = merge_patch if media == MERGE_PATCH else strategic_merge_patch
    merged: JsonObject = merge(obj, patch)
    return merged


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str = "") -> Any:
    """Kubernetes' strategic merge for the list fields the fake's objects have."""
    if isinstance(patch, list):
        return _merge_list(target, patch, field)
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not k.startswith("$")}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue  # $setElementOrder/..., $retainKeys: ordering hints the fake ignores
        if value is None:
            result.pop(key, None)
        else:
            result[key] = strategic_merge_patch(result.get(key), value, key)
    return result


def _merge_list(target: Any, patch: list[Any], field: str) -> list[Any]:
    key = _MERGE_KEYS.get(field)
    if key is None or not isinstance(target, list):
        return [copy.deepcopy(item) for item in patch if not _is_directive(item)]
    result = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            raise ApiError(422, "Invalid", f"{field}: every item needs its merge key {key!r}")
        index = next((i for i, old in enumerate(result) if old.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strategic_merge_patch({}, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def _is_directive(item: Any) -> bool:
    return isinstance(item, dict) and "$patch" in item


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, "Invalid", f"JSON pointer must start with '/': {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts[:-1]:
        node = _child(node, part, path)
    return node


def _child(node: Any, part: str, path: str) -> Any:
    try:
        return node[int(part)] if isinstance(node, list) else node[part]
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise ApiError(
            422, "Invalid", f"the server rejected our request: path {path!r} does not exist"
        ) from exc


def _get(doc: Any, path: str) -> Any:
    node = doc
    for part in _pointer(path):
        node = _child(node, part, path)
    return node


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise ApiError(422, "Invalid", "the server rejected our request: cannot remove the root")
    parent = _parent(doc, parts, path)
    _child(parent, parts[-1], path)
    return parent.pop(int(parts[-1]) if isinstance(parent, list) else parts[-1])


def _add(doc: Any, path: str, value: Any) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if not 0 <= index <= len(parent):
            raise ApiError(422, "Invalid", f"the server rejected our request: index {path!r}")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise ApiError(422, "Invalid", f"the server rejected our request: path {path!r}")
    return doc


def json_patch(obj: JsonObject, operations: list[Any]) -> JsonObject:
    """RFC 6902."""
    doc: Any = copy.deepcopy(obj)
    for operation in operations:
        if not isinstance(operation, dict) or not isinstance(operation.get("path"), str):
            raise bad_request("json patch operations need an 'op' and a 'path'")
        op, path, value = operation.get("op"), operation["path"], operation.get("value")
        if op == "add":
            doc = _add(doc, path, copy.deepcopy(value))
        elif op == "remove":
            _remove(doc, path)
        elif op == "replace":
            _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(value))
        elif op in ("move", "copy"):
            moved = copy.deepcopy(_get(doc, str(operation.get("from", ""))))
            if op == "move":
                _remove(doc, str(operation.get("from", "")))
            doc = _add(doc, path, moved)
        elif op == "test":
            if _get(doc, path) != value:
                raise ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request: test operation for path {path!r} failed",
                )
        else:
            raise bad_request(f"Unexpected kind: {op}")
    if not isinstance(doc, dict):
        raise ApiError(422, "Invalid", "the patched object is not an object")
    return doc
