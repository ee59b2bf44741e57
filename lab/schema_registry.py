"""The schema registry fake: Streamhouse's registry REST API, rendered from ``world.subjects``.

Two spellings, chosen by the world's profile (facts §4.3, runbook schema-registry-errors.md):

- ``runbook``: Confluent style at the root, as the runbook calls it on :8081, including
  ``POST /compatibility/subjects/{s}/versions/{v|latest}`` → ``{"is_compatible": bool}``
  (``?verbose=true`` adds ``messages``); PUT config answers ``{"compatibility": MODE}``;
  Confluent error codes (40401 subject, 40402 version, 40403 schema id, 42201 invalid schema,
  42202 invalid version, 42203 invalid mode, 409 incompatible).
- ``upstream``: the unified server's routes under ``/schemas``; ``x-organization-id`` is
  required on every subject route and on ``/config/{subject}`` (else 400 ``{"error_code":
  400, "message": "Missing x-organization-id header"}``); no compatibility route (404);
  PUT config answers ``{"compatibilityLevel": MODE}``; modes are upper-case only and a bad
  mode is rejected by axum's JSON extractor (422, plain text); upstream's error codes.

Both: ``GET /subjects``, ``GET /subjects/{s}/versions``, ``GET /subjects/{s}/versions/{v}``,
``POST /subjects/{s}/versions`` (registers after a real Avro check against the latest
version; 409 when incompatible; an identical schema returns its id), ``GET /schemas/ids/{id}``,
``GET|PUT /config``, ``GET|PUT /config/{s}`` (GET falls back to the global mode), ``GET /health``.
Registering appends to ``world.subjects[s].versions`` and PUT config sets the subject's
``compatibility``; both append registry log lines. Transitive modes check the latest version
only, as upstream does.

Compatibility semantics: both spellings front Streamhouse's registry code (the runbook's
:8081 is its standalone binary), whose BACKWARD check runs the *old* schema as the reader:
removing a required field is rejected under BACKWARD and accepted under FORWARD, exactly the
runbook's story. ``swapped_compatibility=False`` gives the Avro/Confluent meaning instead
(see ``lab.avro_compat``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final, Self

from aiohttp import web

from lab.avro_compat import MODES, InvalidSchema, Schema, compatibility_problems, parse
from lab.http import ServerThread
from lab.world import LogLine, Profile, Subject, World

ORG_HEADER: Final = "x-organization-id"


class RegistryError(Exception):
    """An answer other than success: JSON ``{"error_code", "message"}`` or axum's plain text."""

    def __init__(self, status: int, code: int, message: str, *, plain: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.plain = status, code, message, plain

    def response(self) -> web.Response:
        """The HTTP answer for this error."""
        if self.plain:
            return web.Response(status=self.status, text=self.message)
        body = {"error_code": self.code, "message": self.message}
        return web.json_response(body, status=self.status)


# (status, error_code, message template) per profile; upstream's from facts §4.3.
_ERRORS: Final[dict[str, dict[str, tuple[int, int, str]]]] = {
    "runbook": {
        "subject": (404, 40401, "Subject '{subject}' not found."),
        "version": (404, 40402, "Version {version} not found."),
        "id": (404, 40403, "Schema {id} not found"),
        "bad_version": (422, 42202, "The specified version '{version}' is not a valid version id."),
        "incompatible": (
            409,
            409,
            'Schema being registered is incompatible with an earlier schema for subject "{subject}"'
            ", details: {problems}",
        ),
    },
    "upstream": {
        "subject": (404, 40401, "Subject not found: {subject}"),
        "version": (404, 40401, "Schema not found: {subject} version {version}"),
        "id": (404, 40401, "Schema not found: id:{id} version 0"),
        "bad_version": (400, 400, "Invalid version: {version}"),
        "incompatible": (
            409,
            409,
            "New schema is not compatible with version {version} under {debug} mode",
        ),
    },
}


@dataclass(frozen=True)
class Spelling:
    """How one profile spells the API: mount point, header rule, routes and messages."""

    profile: Profile
    prefix: str
    needs_org: bool
    has_compatibility_route: bool

    @property
    def confluent(self) -> bool:
        """True for the runbook's Confluent-style spelling."""
        return self.profile == "runbook"

    def error(self, kind: str, **values: object) -> RegistryError:
        """The profile's answer for ``kind`` (a key of ``_ERRORS``), filled with ``values``."""
        status, code, template = _ERRORS[self.profile][kind]
        return RegistryError(status, code, template.format(**values))

    def bad_mode(self, raw: object) -> RegistryError:
        """A compatibility value that is not one of the upper-case modes."""
        if self.confluent:
            valid = ", ".join(mode.lower() for mode in MODES)
            return RegistryError(
                422, 42203, f"Invalid compatibility level. Valid values are {valid}"
            )
        expected = ", ".join(f"`{mode}`" for mode in MODES)
        text = (
            "Failed to deserialize the JSON body into the target type: compatibility: "
            f"unknown variant `{raw}`, expected one of {expected}"
        )
        return RegistryError(422, 422, text, plain=True)

    def bad_body(self, reason: str) -> RegistryError:
        """A body that is not the JSON object the route expects."""
        if self.confluent:
            return RegistryError(400, 400, reason)
        return RegistryError(
            400, 400, f"Failed to parse the request body as JSON: {reason}", plain=True
        )


RUNBOOK: Final = Spelling("runbook", "", needs_org=False, has_compatibility_route=True)
UPSTREAM: Final = Spelling("upstream", "/schemas", needs_org=True, has_compatibility_route=False)


def canonical(schema: str) -> str:
    """A schema's identity for ids and de-duplication: its JSON with sorted keys."""
    try:
        return json.dumps(json.loads(schema), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return schema


class Registry:
    """The registry's logic over the world; every method runs with ``world.lock`` held."""

    def __init__(self, world: World, spelling: Spelling, swapped: bool) -> None:
        self.world, self.spelling, self.swapped = world, spelling, swapped
        self._ids: dict[str, int] = {}

    def schema_id(self, schema: str) -> int:
        """The global id of a schema (ids follow first sight, stable for the fake's life)."""
        key = canonical(schema)
        if key not in self._ids:
            self._ids[key] = len(self._ids) + 1
        return self._ids[key]

    def assign_ids(self) -> None:
        """Give every stored version an id, so ids do not depend on request order."""
        for subject in self.world.subjects.values():
            for schema in subject.versions:
                self.schema_id(schema)

    def subject(self, name: str) -> Subject:
        """A subject with at least one version, else 404."""
        subject = self.world.subjects.get(name)
        if subject is None or not subject.versions:
            raise self.spelling.error("subject", subject=name)
        return subject

    def version(self, name: str, raw: str) -> tuple[int, str]:
        """``(version, schema)`` for ``raw`` = a version number or ``latest``."""
        subject = self.subject(name)
        if raw == "latest":
            return len(subject.versions), subject.versions[-1]
        if not raw.isdigit() or int(raw) < 1:
            raise self.spelling.error("bad_version", version=raw)
        if int(raw) > len(subject.versions):
            raise self.spelling.error("version", subject=name, version=raw)
        return int(raw), subject.versions[int(raw) - 1]

    def mode(self, name: str | None) -> str:
        """The effective mode of a subject (its own, else global); 500 if unknown."""
        subject = self.world.subjects.get(name) if name else None
        mode = (subject.compatibility if subject else None) or self.world.global_compatibility
        if mode.upper() not in MODES:
            raise RegistryError(500, 50001, f"Database error: unknown compatibility mode {mode}")
        return mode.upper()

    def problems(self, name: str, candidate: str, raw_version: str = "latest") -> list[str]:
        """Why ``candidate`` may not follow the given version under the subject's mode."""
        _, existing = self.version(name, raw_version)
        new = _parse(candidate)
        try:
            old = parse(existing)
        except InvalidSchema as exc:
            raise RegistryError(422, 42201, f"Invalid existing Avro schema: {exc}") from exc
        return compatibility_problems(self.mode(name), new, old, swapped=self.swapped)

    def register(self, name: str, candidate: str) -> int:
        """Append ``candidate`` to the subject after the compatibility check; its id."""
        _parse(candidate)
        subject = self.world.subjects.get(name)
        if subject is not None and subject.versions:
            known = {canonical(schema) for schema in subject.versions}
            if canonical(candidate) in known:
                return self.schema_id(candidate)
            problems = self.problems(name, candidate)
            if problems:
                self._log_rejection(name, problems)
                raise self.spelling.error(
                    "incompatible",
                    subject=name,
                    version=len(subject.versions),
                    debug=_rust_debug(self.mode(name)),
                    problems=problems,
                )
        subject = self.world.subjects.setdefault(name, Subject(name, []))
        subject.versions.append(candidate)
        schema_id = self.schema_id(candidate)
        self.log(
            f"INFO Schema registered successfully subject={name} "
            f"version={len(subject.versions)} schema_id={schema_id}"
        )
        self.world.touch()
        return schema_id

    def set_mode(self, name: str | None, mode: str) -> None:
        """Set a subject's mode (``name``) or the global one (``None``)."""
        if name is None:
            self.world.global_compatibility = mode
            self.log(f"INFO Global compatibility mode updated compatibility={mode.lower()}")
        else:
            self.world.subjects.setdefault(name, Subject(name, [])).compatibility = mode
            self.log(f"INFO Subject config updated subject={name} compatibility={mode.lower()}")
        self.world.touch()
        self._retry_pending()

    def _retry_pending(self) -> None:
        """Producers keep retrying ``world.pending_schema``: once the mode lets it in, it
        registers and the registration errors stop."""
        pending = self.world.pending_schema
        if pending is None:
            return
        subject, schema = pending
        try:
            if self.world.subjects.get(subject) and self.problems(subject, schema):
                return
        except RegistryError:
            return
        self.world.pending_schema = None
        self.world.traffic.schema_errors_per_s.pop("registration", None)
        self.register(subject, schema)

    def find_id(self, schema_id: int) -> tuple[str, int, str]:
        """``(subject, version, schema)`` of the first version with this id."""
        self.assign_ids()
        for subject in self.world.subjects.values():
            for index, schema in enumerate(subject.versions, start=1):
                if self.schema_id(schema) == schema_id:
                    return subject.name, index, schema
        raise self.spelling.error("id", id=schema_id)

    def log(self, text: str) -> None:
        """Append a registry log line."""
        self.world.registry_logs.append(LogLine(self.world.now(), text))

    def _log_rejection(self, name: str, problems: list[str]) -> None:
        # Upstream's registry logs nothing on failures (facts §4.3); the runbook's does.
        if self.spelling.confluent:
            self.log(f"ERROR Schema registration failed: Incompatible schema for subject {name}")
            self.log(f"INFO Compatibility check failed: {problems[0]} ({self.mode(name)} mode)")


def _rust_debug(mode: str) -> str:
    """``FULL_TRANSITIVE`` as Rust's ``{:?}`` prints the enum: ``FullTransitive``."""
    return "".join(part.capitalize() for part in mode.split("_"))


def _parse(candidate: str) -> Schema:
    try:
        return parse(candidate)
    except InvalidSchema as exc:
        raise RegistryError(422, 42201, str(exc)) from exc


# -- HTTP -------------------------------------------------------------------------------------
@web.middleware
async def _answer_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except RegistryError as exc:
        return exc.response()
    return response


class _Routes:
    """The route handlers; each reads or changes the world under its lock."""

    def __init__(self, registry: Registry) -> None:
        self.registry, self.spelling, self.lock = registry, registry.spelling, registry.world.lock

    def require_org(self, request: web.Request) -> None:
        if self.spelling.needs_org and not request.headers.get(ORG_HEADER):
            raise RegistryError(400, 400, "Missing x-organization-id header")

    async def body(self, request: web.Request) -> dict[str, Any]:
        if not self.spelling.confluent and request.content_type != "application/json":
            text = "Expected request with `Content-Type: application/json`"
            raise RegistryError(415, 415, text, plain=True)
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError as exc:
            raise self.spelling.bad_body(str(exc)) from exc
        if not isinstance(body, dict):
            raise self.spelling.bad_body("expected a JSON object")
        return body

    async def schema_field(self, request: web.Request) -> str:
        body = await self.body(request)
        schema, kind = body.get("schema"), body.get("schemaType", "AVRO")
        if not isinstance(schema, str):
            raise RegistryError(422, 42201, "Invalid schema: 'schema' must be a string")
        if kind != "AVRO":
            raise RegistryError(422, 42201, f"The lab registry holds Avro schemas only, not {kind}")
        return schema

    async def mode_field(self, request: web.Request) -> str:
        raw = (await self.body(request)).get("compatibility")
        mode = raw.upper() if self.spelling.confluent and isinstance(raw, str) else raw
        if mode not in MODES:
            raise self.spelling.bad_mode(raw)
        return str(mode)

    def version_body(self, subject: str, version: int, schema: str) -> dict[str, Any]:
        body = {
            "subject": subject, "version": version,
            "id": self.registry.schema_id(schema), "schema": schema,
        }  # fmt: skip
        if not self.spelling.confluent:
            body |= {"schemaType": "AVRO", "references": []}
        return body

    async def subjects(self, request: web.Request) -> web.Response:
        self.require_org(request)
        with self.lock:
            names = sorted(name for name, s in self.registry.world.subjects.items() if s.versions)
        return web.json_response(names)

    async def versions(self, request: web.Request) -> web.Response:
        self.require_org(request)
        with self.lock:
            count = len(self.registry.subject(request.match_info["subject"]).versions)
        return web.json_response(list(range(1, count + 1)))

    async def get_version(self, request: web.Request) -> web.Response:
        self.require_org(request)
        subject = request.match_info["subject"]
        with self.lock:
            self.registry.assign_ids()
            version, schema = self.registry.version(subject, request.match_info["version"])
            return web.json_response(self.version_body(subject, version, schema))

    async def register(self, request: web.Request) -> web.Response:
        self.require_org(request)
        schema = await self.schema_field(request)
        with self.lock:
            self.registry.assign_ids()
            schema_id = self.registry.register(request.match_info["subject"], schema)
        return web.json_response({"id": schema_id})

    async def by_id(self, request: web.Request) -> web.Response:
        raw = request.match_info["id"]
        if not raw.isdigit():
            raise self.spelling.bad_body(f"Invalid schema id: {raw}")
        with self.lock:
            subject, version, schema = self.registry.find_id(int(raw))
            if self.spelling.confluent:
                return web.json_response({"schema": schema})
            return web.json_response(self.version_body(subject, version, schema))

    async def get_config(self, request: web.Request) -> web.Response:
        subject = request.match_info.get("subject")
        if subject is not None:
            self.require_org(request)
        with self.lock:
            return web.json_response({"compatibilityLevel": self.registry.mode(subject)})

    async def put_config(self, request: web.Request) -> web.Response:
        subject = request.match_info.get("subject")
        if subject is not None:
            self.require_org(request)
        mode = await self.mode_field(request)
        with self.lock:
            self.registry.set_mode(subject, mode)
        key = "compatibility" if self.spelling.confluent else "compatibilityLevel"
        return web.json_response({key: mode})

    async def check(self, request: web.Request) -> web.Response:
        schema = await self.schema_field(request)
        subject, version = request.match_info["subject"], request.match_info["version"]
        with self.lock:
            problems = self.registry.problems(subject, schema, version)
        body: dict[str, Any] = {"is_compatible": not problems}
        if request.query.get("verbose") == "true":
            body["messages"] = problems
        return web.json_response(body)

    async def health(self, _request: web.Request) -> web.Response:
        return web.Response(text="OK")


def build_app(registry: Registry) -> web.Application:
    """The aiohttp application serving ``registry`` in its spelling."""
    routes, prefix = _Routes(registry), registry.spelling.prefix
    app = web.Application(middlewares=[_answer_errors])
    add = app.router
    add.add_get(f"{prefix}/subjects", routes.subjects)
    add.add_get(f"{prefix}/subjects/{{subject}}/versions", routes.versions)
    add.add_post(f"{prefix}/subjects/{{subject}}/versions", routes.register)
    add.add_get(f"{prefix}/subjects/{{subject}}/versions/{{version}}", routes.get_version)
    add.add_get(f"{prefix}/schemas/ids/{{id}}", routes.by_id)
    add.add_get(f"{prefix}/config", routes.get_config)
    add.add_put(f"{prefix}/config", routes.put_config)
    add.add_get(f"{prefix}/config/{{subject}}", routes.get_config)
    add.add_put(f"{prefix}/config/{{subject}}", routes.put_config)
    add.add_get(f"{prefix}/health", routes.health)
    if registry.spelling.has_compatibility_route:
        path = f"{prefix}/compatibility/subjects/{{subject}}/versions/{{version}}"
        add.add_post(path, routes.check)
    return app


class SchemaRegistryFake:
    """The registry fake on 127.0.0.1:<free port>, in its own thread and event loop."""

    def __init__(
        self,
        world: World,
        *,
        spelling: Profile | None = None,
        swapped_compatibility: bool = True,
    ) -> None:
        chosen = RUNBOOK if (spelling or world.profile) == "runbook" else UPSTREAM
        self.registry = Registry(world, chosen, swapped_compatibility)
        self._server: ServerThread | None = None

    def start(self) -> None:
        """Start serving; returns once the port accepts connections."""
        server = ServerThread(
            lambda _base: build_app(self.registry), name="the schema registry fake"
        )
        server.start()
        self._server = server

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL clients use, including the ``/schemas`` mount in upstream spelling."""
        if self._server is None:
            raise RuntimeError("the schema registry fake is not running")
        return self._server.base_url + self.registry.spelling.prefix
