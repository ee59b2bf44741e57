"""Kubernetes API errors, answered as real ``Status`` objects.

Handlers raise ``ApiError``; the server's middleware turns it into the JSON body the
API server sends, so the official client raises ``ApiException`` with the same status,
reason and message a real cluster would give. The helpers below spell the messages the
way kube-apiserver does (``pods "x" not found``, ``Operation cannot be fulfilled ...``).
"""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]


class ApiError(Exception):
    """An error the fake answers with a ``Status`` body and the HTTP ``code``."""

    def __init__(
        self, code: int, reason: str, message: str, details: JsonObject | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def status(self) -> JsonObject:
        """The ``Status`` object kube-apiserver would send."""
        body: JsonObject = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


def qualified(resource: str, group: str) -> str:
    """``deployments.apps`` for a group resource, ``pods`` for the core group."""
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    """404 for a named object that does not exist."""
    kind = qualified(resource, group)
    return ApiError(
        404,
        "NotFound",
        f'{kind} "{name}" not found',
        {"name": name, "group": group, "kind": resource}
        if group
        else {"name": name, "kind": resource},
    )


def route_not_found() -> ApiError:
    """404 for a path the API server does not serve."""
    return ApiError(404, "NotFound", "the server could not find the requested resource")


def conflict(resource: str, name: str, group: str = "") -> ApiError:
    """409 for a write based on a stale ``resourceVersion``."""
    kind = qualified(resource, group)
    message = (
        f'Operation cannot be fulfilled on {kind} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, {"name": name, "group": group, "kind": resource})


def invalid(kind: str, name: str, field: str, problem: str, group: str = "") -> ApiError:
    """422 for an object that fails validation (``Deployment.apps "x" is invalid: ...``)."""
    qualified_kind = f"{kind}.{group}" if group else kind
    message = f'{qualified_kind} "{name}" is invalid: {field}: {problem}'
    cause = {"reason": "FieldValueInvalid", "message": problem, "field": field}
    details = {"name": name, "group": group, "kind": kind, "causes": [cause]}
    return ApiError(422, "Invalid", message, details)


def forbidden(resource: str, name: str, why: str, group: str = "") -> ApiError:
    """403 for a request that admission or RBAC refuses."""
    kind = qualified(resource, group)
    return ApiError(
        403,
        "Forbidden",
        f'{kind} "{name}" is forbidden: {why}',
        {"name": name, "group": group, "kind": resource},
    )


def bad_request(message: str) -> ApiError:
    """400 for a request the server cannot decode (bad selector, malformed patch)."""
    return ApiError(400, "BadRequest", message)


def unsupported_media_type(accepted: list[str]) -> ApiError:
    """415 for a patch content type the fake does not apply."""
    message = (
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted)
    )
    return ApiError(415, "UnsupportedMediaType", message)


def method_not_allowed(message: str) -> ApiError:
    """405 for a verb the resource (or the lab) does not support."""
    return ApiError(405, "MethodNotAllowed", message)
