"""The schema-registry runbook: the Avro diff and compatibility check, error classification,
guard rails, and the verdicts of the lab's registry in both profiles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.models import CheckResult, Risk, Status
from bot.profiles import profile_named
from bot.sources.base import Sources
from bot.store import EmbeddedPostgres
from handlers import avro_diff, registry_errors
from handlers import schema_registry as sr
from handlers.base import CheckContext, Target
from lab import avro_compat
from lab.scenarios import ORDERS_V2_COMPATIBLE, ORDERS_V2_INCOMPATIBLE
from lab.stack import Lab
from tests.handlers import diagnose, running_lab

NOT_OK = (Status.WARNING, Status.CRITICAL)


def record(*fields: dict[str, Any], name: str = "Order") -> str:
    """An Avro record schema with ``fields``, as JSON text."""
    return json.dumps({"type": "record", "name": name, "namespace": "demo", "fields": fields})


ID = {"name": "id", "type": "string"}
EMAIL = {"name": "email", "type": "string"}
EMAIL_OPTIONAL = {"name": "email", "type": "string", "default": ""}
AMOUNT_INT = {"name": "amount", "type": "int"}
AMOUNT_LONG = {"name": "amount", "type": "long"}


# -- SR-3: the diff -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (record(ID, EMAIL), record(ID), [("removed", "email", True)]),
        (record(ID, EMAIL_OPTIONAL), record(ID), [("removed", "email", False)]),
        (record(ID), record(ID, EMAIL), [("added", "email", True)]),
        (record(ID), record(ID, EMAIL_OPTIONAL), [("added", "email", False)]),
        (record(ID, AMOUNT_INT), record(ID, AMOUNT_LONG), [("type_changed", "amount", True)]),
        (record(ID), record(ID), []),
    ],
)
def test_field_changes_mark_what_the_runbook_calls_breaking(
    old: str, new: str, expected: list[tuple[str, str, bool]]
) -> None:
    """Removed required, added without default and changed type are breaking; the rest not."""
    changes = avro_diff.field_changes(avro_diff.parse(old), avro_diff.parse(new))
    assert [(c.kind, c.path, c.breaking) for c in changes] == expected


def test_nested_record_changes_carry_a_dotted_path() -> None:
    """A field removed inside a nested record is named by its path."""
    address = {"type": "record", "name": "Address", "fields": [{"name": "city", "type": "string"}]}
    old = record(ID, {"name": "ship_to", "type": address})
    new = record(ID, {"name": "ship_to", "type": {**address, "fields": []}})
    changes = avro_diff.field_changes(avro_diff.parse(old), avro_diff.parse(new))
    assert [(c.path, c.breaking) for c in changes] == [("ship_to.city", True)]


@pytest.mark.parametrize(
    "text",
    ["{not json", '{"type": "record", "name": "X"}', record({"name": "a", "type": "integer"})],
)
def test_invalid_schemas_are_rejected_with_a_reason(text: str) -> None:
    """Not JSON, a record without fields and an unknown type are invalid."""
    with pytest.raises(avro_diff.InvalidSchemaError):
        avro_diff.parse(text)


# -- SR-4: the compatibility prediction -----------------------------------------------------
PAIRS = [
    (record(ID, EMAIL), record(ID)),  # the runbook's "removed required field"
    (record(ID), record(ID, EMAIL)),  # "added required field without default"
    (record(ID), record(ID, EMAIL_OPTIONAL)),
    (record(ID, AMOUNT_INT), record(ID, AMOUNT_LONG)),
    (record(ID, AMOUNT_LONG), record(ID, AMOUNT_INT)),
    (record(ID, EMAIL), record(ID, {"name": "email", "type": ["null", "string"]})),
]


def test_removing_a_required_field_fails_backward_as_streamhouse_checks_it() -> None:
    """Streamhouse's BACKWARD reads new data with the old schema: a dropped field fails it."""
    latest, candidate = (avro_diff.parse(text) for text in (record(ID, EMAIL), record(ID)))
    assert avro_diff.compatibility_problems("BACKWARD", candidate, latest)
    assert avro_diff.compatibility_problems("FORWARD", candidate, latest) == []
    assert avro_diff.compatibility_problems("FULL_TRANSITIVE", candidate, latest)
    assert avro_diff.compatibility_problems("NONE", candidate, latest) == []


@pytest.mark.parametrize("mode", ["BACKWARD", "FORWARD", "FULL", "NONE"])
@pytest.mark.parametrize(("old", "new"), PAIRS)
def test_bot_check_agrees_with_the_registry_on_accept_or_refuse(
    mode: str, old: str, new: str
) -> None:
    """Upstream has no compatibility route: the bot's verdict matches the registry's code."""
    ours = avro_diff.compatibility_problems(mode, avro_diff.parse(new), avro_diff.parse(old))
    theirs = avro_compat.compatibility_problems(
        mode, avro_compat.parse(new), avro_compat.parse(old), swapped=True
    )
    assert bool(ours) == bool(theirs), (ours, theirs)


# -- SR-1 classification, guards, cause -----------------------------------------------------
def test_registry_error_lines_name_the_subject_and_kind() -> None:
    """The runbook's registry lines give the failing subject, version and error kind."""
    lines = [
        "ERROR Schema registration failed: Incompatible schema for subject orders-value",
        "WARN Schema not found: subject=payments-value version 3",
    ]
    found = registry_errors.failing_subjects_in(lines)
    assert found["orders-value"]["kinds"] == ["incompatible"]
    assert found["payments-value"] == {"version": 3, "kinds": ["not-found"]}


def test_mode_change_to_none_needs_two_approvers() -> None:
    """SR-A1 to NONE is high risk; any other mode medium."""
    assert sr.mode_change_risk("none") is Risk.HIGH
    assert sr.mode_change_risk("FULL") is Risk.MEDIUM


def test_mode_change_is_blocked_while_the_current_mode_is_unknown() -> None:
    """The confirmation shows current → new, so SR-2 must have read the current mode."""
    ctx = CheckContext(Sources(), profile_named("runbook"))
    unknown = {"SR-2": CheckResult("SR-2", "", Status.UNKNOWN, "")}
    assert not sr.guard_mode_change(unknown, ctx)[0]
    known = {"SR-2": CheckResult("SR-2", "", Status.OK, "", {"global": "BACKWARD"})}
    assert sr.guard_mode_change(known, ctx) == (True, None)


def test_probable_cause_names_the_incompatible_subject() -> None:
    """SR-1's incompatible registrations become the cause, with the subject named."""
    errors = CheckResult(
        "SR-1", "", Status.CRITICAL, "", {"subjects": {"orders-value": {}}}, cause="incompatible"
    )
    assert (
        sr.probable_cause({"SR-1": errors}) == "incompatible schema registration for orders-value"
    )


# -- against the lab ------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["runbook", "upstream"])
def lab(request: pytest.FixtureRequest, pg_server: EmbeddedPostgres) -> Iterator[Lab]:
    """One running lab per profile, shared by the module."""
    yield from running_lab(request.param, pg_server)


def test_healthy_registry_passes_every_check(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """`healthy`: every check ok; SR-6 runs only where cache metrics exist (runbook)."""
    diagnosis = diagnose(lab, monkeypatch, sr.RUNBOOK)
    assert [
        (c.id, c.status, c.summary) for c in diagnosis.checks if c.status is not Status.OK
    ] == []
    ran = {c.id for c in diagnosis.checks}
    assert ("SR-6" in ran) is (lab.profile == "runbook")
    assert "SR-4" not in ran  # no candidate schema given


def test_compatible_candidate_passes(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A candidate adding a field with a default is compatible, found by its record name."""
    fields = [*ORDERS_V2_COMPATIBLE["fields"], {"name": "note", "type": "string", "default": ""}]
    candidate = json.dumps({**ORDERS_V2_COMPATIBLE, "fields": fields})
    check = diagnose(lab, monkeypatch, sr.RUNBOOK, target=Target(schema=candidate)).check("SR-4")
    assert check is not None
    assert check.status is Status.OK, check.summary
    assert check.evidence["subject"] == "orders-value"
    judge = "registry" if lab.profile == "runbook" else "bot's Avro check"
    assert check.evidence["judged_by"] == judge


def test_incompatible_candidate_is_critical(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dropping the required `email` field is refused under BACKWARD, and SR-4 says why."""
    candidate = json.dumps(ORDERS_V2_INCOMPATIBLE)
    target = Target(topic="orders", schema=candidate)
    check = diagnose(lab, monkeypatch, sr.RUNBOOK, target=target).check("SR-4")
    assert check is not None
    assert check.status is Status.CRITICAL
    assert any("email" in problem for problem in check.evidence["problems"])


def test_mode_none_is_a_warning(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A subject switched to NONE registers anything: SR-2 warns and names it."""
    subject = lab.world.subjects["orders-value"]
    subject.compatibility = "NONE"
    try:
        check = diagnose(lab, monkeypatch, sr.RUNBOOK).check("SR-2")
    finally:
        subject.compatibility = None
    assert check is not None
    assert check.status is Status.WARNING
    assert "orders-value" in check.summary


def test_incompatible_registrations_name_the_subject(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`schema-incompatible`: SR-1 reports the failing registrations of orders-value."""
    lab.switch("schema-incompatible")
    diagnosis = diagnose(lab, monkeypatch, sr.RUNBOOK)
    assert diagnosis.status in NOT_OK
    errors = diagnosis.check("SR-1")
    assert errors is not None
    assert errors.status in NOT_OK
    assert "orders-value" in (diagnosis.probable_cause or "")
    assert "incompatible" in (diagnosis.probable_cause or "")
