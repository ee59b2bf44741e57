"""Which cause an S3 error names: throttling, credentials, bucket config or network.

From the ``error_type`` label of ``s3_errors_total`` where the profile types its errors
(the runbook profile; upstream has only retry/failed), and from the agents' S3 error log
lines (runbook wording and upstream's real messages). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from handlers.logs import compiled

# error_type values (runbook profile) → cause; upstream has only retry/failed.
ERROR_TYPE_CAUSES: Mapping[str, str] = {
    **dict.fromkeys(("503", "slowdown"), "throttling"),
    **dict.fromkeys(("accessdenied", "invalidaccesskeyid", "expiredtoken"), "credentials"),
    **dict.fromkeys(("nosuchbucket", "permanentredirect"), "bucket-config"),
    **dict.fromkeys(("connection", "timeout"), "network"),
}
# Tried in order: a throttled upload's line may also mention a timeout.
LOG_CAUSES = tuple(
    (cause, compiled(pattern))
    for cause, pattern in (
        ("throttling", r"slow ?down|\b503\b|is_throttle_error=true|reduce your request rate"),
        ("credentials", r"access ?denied|invalidaccesskeyid|expiredtoken|\b403\b"),
        ("bucket-config", r"nosuchbucket|permanentredirect|\b301\b"),
        ("network", r"connection (refused|reset|closed)|timed? ?out|dns|dispatch failure"),
    )
)
OBJECT_KEY_FIELD = compiled(r"\bkey=\S+")  # a partition named 403 must not read as a 403


def cause_of_line(line: str) -> str:
    """The cause an S3 error line names (``other`` when none); object keys are ignored."""
    line = OBJECT_KEY_FIELD.sub("", line)
    return next((cause for cause, regex in LOG_CAUSES if regex.search(line)), "other")


def dominant(tally: Mapping[str, float]) -> str | None:
    """The cause with the most weight (``other`` and zeros never win)."""
    named = {cause: weight for cause, weight in tally.items() if cause != "other" and weight > 0}
    return max(named, key=lambda cause: named[cause]) if named else None
