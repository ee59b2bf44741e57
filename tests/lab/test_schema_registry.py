"""The schema registry fake in both spellings, and the Avro compatibility check behind it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from lab.avro_compat import InvalidSchema, compatibility_problems, parse, read_problems
from lab.schema_registry import SchemaRegistryFake
from lab.world import Profile, Subject, World


def record(*fields: dict[str, Any], name: str = "Order") -> str:
    """An Avro record schema as registry JSON text."""
    return json.dumps(
        {"type": "record", "name": name, "namespace": "com.example", "fields": fields}
    )


ID = {"name": "id", "type": "int"}
EMAIL = {"name": "email", "type": "string"}
AMOUNT = {"name": "amount", "type": "double"}
NOTE = {"name": "note", "type": ["null", "string"], "default": None}
ORDERS_V1 = record(ID, EMAIL)
ORDERS_V2 = record(ID, EMAIL, AMOUNT | {"default": 0.0})
WITHOUT_EMAIL = record(ID, AMOUNT | {"default": 0.0})  # removes a required field
WITH_NOTE = record(ID, EMAIL, AMOUNT | {"default": 0.0}, NOTE)  # adds an optional field


class Client:
    """A small JSON client for the fake: returns (status, body) and sends the org header."""

    def __init__(self, session: aiohttp.ClientSession, base: str, org: str | None) -> None:
        self.session, self.base = session, base
        self.headers = {"x-organization-id": org} if org else {}

    async def call(
        self, method: str, path: str, body: Any = None, *, org: bool = True
    ) -> tuple[int, Any]:
        headers = self.headers if org else {}
        async with self.session.request(
            method, self.base + path, json=body, headers=headers
        ) as reply:
            text = await reply.text()
            is_json = reply.content_type == "application/json"
            return reply.status, json.loads(text) if is_json else text


def _world(profile: Profile) -> World:
    world = World(profile)
    world.subjects["orders-value"] = Subject("orders-value", [ORDERS_V1, ORDERS_V2])
    world.subjects["payments-value"] = Subject("payments-value", [record(ID, name="Payment")])
    return world


@pytest.fixture(params=["runbook", "upstream"])
def world(request: pytest.FixtureRequest) -> World:
    """A world with orders-value (v1, v2) and payments-value, in each profile."""
    return _world(request.param)


@pytest.fixture
def fake(world: World) -> Iterator[SchemaRegistryFake]:
    """The registry fake for the world, started on a free port."""
    with SchemaRegistryFake(world) as registry:
        yield registry


@pytest.fixture
async def client(fake: SchemaRegistryFake, world: World) -> AsyncIterator[Client]:
    """An HTTP client at the fake's URL (the /schemas mount included upstream)."""
    async with aiohttp.ClientSession() as session:
        yield Client(session, fake.url, world.org_id)


async def test_lists_subjects_and_versions(client: Client) -> None:
    """GET /subjects and /subjects/{s}/versions list what the world holds."""
    assert await client.call("GET", "/subjects") == (200, ["orders-value", "payments-value"])
    assert await client.call("GET", "/subjects/orders-value/versions") == (200, [1, 2])


async def test_latest_and_numbered_versions(client: Client, world: World) -> None:
    """GET /subjects/{s}/versions/{v|latest} returns subject, version, id and the schema."""
    status, latest = await client.call("GET", "/subjects/orders-value/versions/latest")
    assert status == 200
    assert {k: latest[k] for k in ("subject", "version", "schema")} == {
        "subject": "orders-value",
        "version": 2,
        "schema": ORDERS_V2,
    }
    status, first = await client.call("GET", "/subjects/orders-value/versions/1")
    assert (status, first["schema"]) == (200, ORDERS_V1)
    assert first["id"] != latest["id"]
    assert ("schemaType" in latest) is (world.profile == "upstream")


async def test_schema_by_id(client: Client, world: World) -> None:
    """GET /schemas/ids/{id} finds a version's schema by its id."""
    _, latest = await client.call("GET", "/subjects/orders-value/versions/latest")
    status, body = await client.call("GET", f"/schemas/ids/{latest['id']}", org=False)
    assert (status, body["schema"]) == (200, ORDERS_V2)
    status, missing = await client.call("GET", "/schemas/ids/999", org=False)
    code = 40403 if world.profile == "runbook" else 40401
    assert (status, missing["error_code"]) == (404, code)


async def test_unknown_subject_and_version(client: Client, world: World) -> None:
    """An unknown subject is 40401; an unknown version 40402 (runbook) or 40401 (upstream)."""
    status, body = await client.call("GET", "/subjects/nope-value/versions")
    assert (status, body["error_code"]) == (404, 40401)
    status, body = await client.call("GET", "/subjects/orders-value/versions/7")
    assert (status, body["error_code"]) == (404, 40402 if world.profile == "runbook" else 40401)


async def test_config_falls_back_to_global(client: Client) -> None:
    """GET /config is the global mode and /config/{s} falls back to it."""
    assert await client.call("GET", "/config", org=False) == (
        200,
        {"compatibilityLevel": "BACKWARD"},
    )
    status, body = await client.call("GET", "/config/orders-value")
    assert (status, body) == (200, {"compatibilityLevel": "BACKWARD"})


async def test_put_config_changes_the_world(client: Client, world: World) -> None:
    """PUT /config/{s} sets the subject's mode in the world and answers in the profile's shape."""
    status, body = await client.call("PUT", "/config/orders-value", {"compatibility": "NONE"})
    key = "compatibility" if world.profile == "runbook" else "compatibilityLevel"
    assert (status, body) == (200, {key: "NONE"})
    assert world.subjects["orders-value"].compatibility == "NONE"
    assert await client.call("GET", "/config/orders-value") == (200, {"compatibilityLevel": "NONE"})
    assert any("Subject config updated" in line.text for line in world.registry_logs)


async def test_register_rejects_a_removed_required_field(client: Client, world: World) -> None:
    """Under BACKWARD, dropping the required 'email' is a 409 and the world keeps two versions."""
    status, body = await client.call(
        "POST", "/subjects/orders-value/versions", {"schema": WITHOUT_EMAIL}
    )
    assert (status, body["error_code"]) == (409, 409)
    if world.profile == "upstream":
        assert body["message"] == "New schema is not compatible with version 2 under Backward mode"
    else:
        assert "field 'email' removed without a default" in body["message"]
    assert len(world.subjects["orders-value"].versions) == 2


async def test_register_after_mode_change_appends_a_version(client: Client, world: World) -> None:
    """The runbook's fix: with FORWARD set, the same schema registers as version 3."""
    await client.call("PUT", "/config/orders-value", {"compatibility": "FORWARD"})
    status, body = await client.call(
        "POST", "/subjects/orders-value/versions", {"schema": WITHOUT_EMAIL}
    )
    assert status == 200
    assert world.subjects["orders-value"].versions[-1] == WITHOUT_EMAIL
    again = await client.call("POST", "/subjects/orders-value/versions", {"schema": WITHOUT_EMAIL})
    assert again == (200, body)
    assert len(world.subjects["orders-value"].versions) == 3


async def test_register_invalid_avro_is_422(client: Client) -> None:
    """A field typed 'integer' is not Avro: 422 with error_code 42201."""
    bad = record({"name": "id", "type": "integer"})
    status, body = await client.call("POST", "/subjects/orders-value/versions", {"schema": bad})
    assert (status, body["error_code"]) == (422, 42201)


async def test_register_creates_a_new_subject(client: Client, world: World) -> None:
    """Registering under an unknown subject creates it with version 1."""
    status, _ = await client.call("POST", "/subjects/test-subject/versions", {"schema": ORDERS_V1})
    assert status == 200
    assert world.subjects["test-subject"].versions == [ORDERS_V1]


@pytest.mark.parametrize("world", ["runbook"], indirect=True)
async def test_runbook_compatibility_route_verdicts(client: Client) -> None:
    """The runbook's compatibility route answers is_compatible for candidates against latest."""
    path = "/compatibility/subjects/orders-value/versions/latest"
    assert await client.call("POST", path, {"schema": WITH_NOTE}) == (200, {"is_compatible": True})
    status, body = await client.call("POST", path + "?verbose=true", {"schema": WITHOUT_EMAIL})
    assert (status, body["is_compatible"]) == (200, False)
    assert body["messages"] == ["field 'email' removed without a default"]
    await client.call("PUT", "/config/orders-value", {"compatibility": "NONE"})
    assert await client.call("POST", path, {"schema": WITHOUT_EMAIL}) == (
        200,
        {"is_compatible": True},
    )


@pytest.mark.parametrize("world", ["runbook"], indirect=True)
async def test_runbook_failure_is_logged(client: Client, world: World) -> None:
    """A rejected registration leaves the runbook's ERROR and compatibility log lines."""
    await client.call("POST", "/subjects/orders-value/versions", {"schema": WITHOUT_EMAIL})
    texts = [line.text for line in world.registry_logs]
    assert "ERROR Schema registration failed: Incompatible schema for subject orders-value" in texts
    assert any("field 'email' removed" in t and "(BACKWARD mode)" in t for t in texts)


@pytest.mark.parametrize("world", ["upstream"], indirect=True)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/subjects"),
        ("GET", "/subjects/orders-value/versions"),
        ("GET", "/subjects/orders-value/versions/latest"),
        ("GET", "/config/orders-value"),
        ("PUT", "/config/orders-value"),
    ],
)
async def test_upstream_requires_the_org_header(client: Client, method: str, path: str) -> None:
    """Upstream subject and /config/{s} routes answer 400 without x-organization-id."""
    body = {"compatibility": "NONE"} if method == "PUT" else None
    status, answer = await client.call(method, path, body, org=False)
    assert (status, answer) == (
        400,
        {"error_code": 400, "message": "Missing x-organization-id header"},
    )


@pytest.mark.parametrize("world", ["upstream"], indirect=True)
async def test_upstream_has_no_compatibility_route(client: Client) -> None:
    """Upstream has no /compatibility route: 404."""
    path = "/compatibility/subjects/orders-value/versions/latest"
    status, _ = await client.call("POST", path, {"schema": WITH_NOTE})
    assert status == 404


@pytest.mark.parametrize("world", ["upstream"], indirect=True)
async def test_upstream_rejects_lower_case_modes_as_axum_does(client: Client, world: World) -> None:
    """A lower-case mode fails axum's JSON extraction: 422 plain text, the world unchanged."""
    status, text = await client.call("PUT", "/config/orders-value", {"compatibility": "none"})
    assert status == 422
    assert text.startswith("Failed to deserialize the JSON body into the target type")
    assert world.subjects["orders-value"].compatibility is None


@pytest.mark.parametrize("world", ["upstream"], indirect=True)
async def test_upstream_routes_live_under_schemas(fake: SchemaRegistryFake) -> None:
    """The upstream fake mounts its routes under /schemas; the root has none."""
    root = fake.url.removesuffix("/schemas")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{root}/config") as reply:
            assert reply.status == 404
        async with session.get(f"{root}/schemas/health") as reply:
            assert (reply.status, await reply.text()) == (200, "OK")


def test_avro_semantics_option_follows_confluent() -> None:
    """With swapped_compatibility=False, BACKWARD means the new schema reads old data."""
    new, old = parse(record(ID, EMAIL, {"name": "phone", "type": "string"})), parse(ORDERS_V1)
    assert compatibility_problems("BACKWARD", new, old) == ["field 'phone' added without a default"]
    assert compatibility_problems("BACKWARD", parse(record(ID)), old) == []
    assert compatibility_problems("FORWARD", parse(record(ID)), old) == [
        "field 'email' removed without a default"
    ]


@pytest.mark.parametrize(
    ("writer", "reader", "ok"),
    [
        ("int", "long", True),
        ("int", "double", True),
        ("long", "int", False),
        ("float", "double", True),
        ("string", "bytes", True),
        ("bytes", "string", True),
        ("string", "int", False),
        ("string", ["null", "string"], True),
        (["null", "string"], "string", False),
    ],
)
def test_field_type_promotions(writer: Any, reader: Any, ok: bool) -> None:
    """Field types resolve by Avro's promotion and union rules."""
    problems = read_problems(
        parse(record({"name": "f", "type": reader})), parse(record({"name": "f", "type": writer}))
    )
    assert (problems == []) is ok


def test_nested_records_enums_and_recursion() -> None:
    """Nested records, enum symbols and recursive types are checked, with paths."""
    status = {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}
    address = {"type": "record", "name": "Address", "fields": [{"name": "zip", "type": "string"}]}
    old = parse(record(ID, {"name": "status", "type": status}, {"name": "ship", "type": address}))
    narrowed = status | {"symbols": ["NEW"]}
    renamed = address | {"fields": [{"name": "zip", "type": "int"}]}
    new = parse(record(ID, {"name": "status", "type": narrowed}, {"name": "ship", "type": renamed}))
    assert read_problems(new, old) == [
        "field 'status': enum symbols ['PAID'] removed",
        "field 'ship.zip': type changed from string to int",
    ]
    linked = parse(record(ID, {"name": "next", "type": ["null", "Order"], "default": None}))
    assert read_problems(linked, linked) == []


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        '{"name": "Order", "fields": []}',
        '{"type": "record", "name": "Order", "fields": [{"name": "id"}]}',
        '{"type": "enum", "name": "E"}',
        '{"type": "record", "name": "R", "fields": [{"name": "x", "type": "Unknown"}]}',
    ],
)
def test_invalid_schemas_are_rejected(text: str) -> None:
    """Malformed Avro (the runbook's common mistakes) raises InvalidSchema."""
    with pytest.raises(InvalidSchema, match="Invalid Avro schema"):
        parse(text)
