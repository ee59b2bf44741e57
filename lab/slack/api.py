"""The request and error types every emulated Web API method works with.

Exceptions:
    SlackError: raised by a method to answer `{"ok": false, "error": ...}` the way Slack
        does (HTTP 200 unless a status is given, optional extra body fields and headers).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

# Parameters Slack accepts as JSON strings in form-encoded or query-string requests.
JSON_PARAMS = frozenset({"blocks", "attachments", "view", "files", "metadata"})


class SlackError(Exception):
    """An error answer: `{"ok": false, "error": error, **extra}`."""

    def __init__(
        self,
        error: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """Return the JSON body Slack sends for this error."""
        return {"ok": False, "error": self.error, **self.extra}


@dataclass(frozen=True)
class ApiRequest:
    """A decoded Web API request: merged query, form and JSON parameters."""

    method: str
    params: dict[str, Any]
    token: str | None
    base_url: str

    def str_param(self, name: str) -> str | None:
        """Return a parameter as a string, or None when absent or empty."""
        value = self.params.get(name)
        if value is None or value == "":
            return None
        return value if isinstance(value, str) else str(value)

    def require(self, name: str, error: str = "invalid_arguments") -> str:
        """Return a parameter as a string or fail with `error` when it is missing."""
        value = self.str_param(name)
        if value is None:
            raise SlackError(error, errors=[f"missing required field: {name}"])
        return value

    def bool_param(self, name: str, default: bool = False) -> bool:
        """Return a parameter as Slack reads booleans: true/1 are true."""
        value = self.params.get(name)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() in {"true", "1", "yes"}

    def json_param(self, name: str, error: str = "invalid_arguments") -> Any:
        """Return a JSON-valued parameter (already decoded, or decoded here)."""
        value = self.params.get(name)
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError as exc:
                raise SlackError(error, errors=[f"{name} is not valid JSON"]) from exc
        return value


def decode_params(raw: dict[str, Any]) -> dict[str, Any]:
    """Decode the JSON-string parameters Slack accepts in form bodies, for recording."""
    decoded: dict[str, Any] = {}
    for key, value in raw.items():
        if key in JSON_PARAMS and isinstance(value, str):
            try:
                decoded[key] = json.loads(value)
                continue
            except ValueError:
                pass
        decoded[key] = value
    return decoded
