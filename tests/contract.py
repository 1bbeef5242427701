"""Check HTTP exchanges against the Mangrove API contract (docs/contract/mangrove-openapi.yaml).

The test suite passes every response the emulator gives to `Contract.check`, which raises
`ContractViolation` listing everything that breaks the contract, or to `Contract.problems`, which returns
that list. It is a test helper, not a test module.

What a response must satisfy:

* **Route.** The method and path (query string ignored, ``/api/v1`` prefix optional) match an operation of
  the spec. Literal path segments beat templated ones, so ``/ledgers/{ledger_id}`` never swallows a literal
  sibling route.
* **Status policy.** The status is one the operation documents, or an error status (>= 400) from the API's
  global status-code table (mangrove-api.md: 400, 401, 403, 404, 422, 429, 500, 503). Anything else is an
  "undocumented status" and its body is not checked further. Whether a 5xx was deliberate (fault injection)
  is the caller's concern, not this module's.
* **Body.** 204 has an empty body. A status documented with an ``application/json`` schema needs a
  ``Content-Type: application/json`` body that parses as strict JSON and validates against that schema
  (Draft 2020-12). Every error body (status >= 400) must also validate against ``#/components/schemas/Error``,
  the two documented error shapes: the non-workflow operations document ``AnyError``, whose branches require
  no key, so on its own it would accept any object at all.
* **Formats.** ``format: date-time`` is enforced strictly, as the contract's response convention:
  ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC, milliseconds). No other format is asserted (``uri``, ``int32``), so the
  result does not depend on which optional jsonschema extras happen to be installed.
* **Headers.** ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset`` (any case) are
  non-negative integers, and Remaining <= Limit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

import yaml
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT202012

DEFAULT_SPEC_PATH = Path(__file__).resolve().parents[1] / "docs" / "contract" / "mangrove-openapi.yaml"
API_PREFIX = "/api/v1"
# The status-code table of mangrove-api.md ("Conventions"); only its error half widens the policy.
GLOBAL_STATUSES = frozenset({200, 201, 202, 204, 400, 401, 403, 404, 422, 429, 500, 503})
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
ERROR_SCHEMA = "/components/schemas/Error"

_HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_SPEC_URI = "urn:mangrove-nb:contract:openapi"
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z", re.ASCII)
_TIMESTAMP_HINT = "the contract's timestamps are YYYY-MM-DDTHH:MM:SS.mmmZ"
_NON_NEGATIVE_INT = re.compile(r"[0-9]+", re.ASCII)
_MAX_SCHEMA_PROBLEMS = 10
_MAX_MESSAGE = 240
_MAX_INSTANCE = 80
_EXCERPT = 400

_YamlBase: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _JsonYamlLoader(_YamlBase):  # type: ignore[misc, valid-type]
    """Safe YAML loader that reads scalars as JSON would: no implicit timestamps (dates stay strings)."""


# Copy the resolver table before editing it, so yaml's shared SafeLoader table is left untouched.
_JsonYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _YamlBase.yaml_implicit_resolvers.items()
}


class ContractViolation(AssertionError):
    """An HTTP exchange broke the contract; `problems` lists every reason, one sentence each."""

    def __init__(self, message: str, problems: list[str]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class DocumentedResponse:
    """One documented status of an operation, with `$ref`s to components/responses already followed."""

    status: str  # the spec's key: "200", or a range such as "4XX"
    description: str
    schema_pointer: str | None  # JSON pointer (into the spec) of the application/json schema, if any
    content_types: tuple[str, ...]


@dataclass(frozen=True)
class Operation:
    """One method on one path template of the spec."""

    method: str  # upper case
    path: str  # the template, e.g. "/ledgers/{ledger_id}/batches"
    operation_id: str | None
    doc_status: str | None  # x-doc-status: documented | partial | inferred
    responses: Mapping[str, DocumentedResponse]

    def response_for(self, status: int) -> DocumentedResponse | None:
        """The documented response for `status`: the exact code first, then its range ("4XX")."""
        return self.responses.get(str(status)) or self.responses.get(f"{status // 100}XX")


@dataclass(frozen=True)
class _PathEntry:
    template: str
    segments: tuple[str | None, ...]  # None marks a templated segment
    operations: Mapping[str, Operation]  # by upper-case method

    def matches(self, segments: list[str]) -> bool:
        if len(segments) != len(self.segments):
            return False
        return all(
            (mine is None and bool(theirs)) or mine == theirs
            for mine, theirs in zip(self.segments, segments, strict=True)
        )

    def specificity(self) -> tuple[int, ...]:
        # Sorts literal-first segment by segment, so the most literal matching template wins.
        return tuple(1 if segment is None else 0 for segment in self.segments)


OVERLAY_NAME = "decisions-overlay.yaml"


def load_overlay(path: Path) -> list[dict[str, Any]]:
    """The overlay's entries: ``{"pointer": "/a/b", "value": ...}`` each (see docs/contract/decisions-overlay.yaml)."""
    entries = yaml.load(path.read_text(encoding="utf-8"), Loader=_JsonYamlLoader)  # noqa: S506 - a safe loader
    if not isinstance(entries, list) or not all(isinstance(e, dict) and {"pointer", "value"} <= set(e)
                                                for e in entries):
        raise ValueError(f"{path} must be a list of {{pointer, value}} entries")
    return entries


def apply_overlay(document: dict[str, Any], entries: list[dict[str, Any]]) -> list[str]:
    """Set each entry's value at its JSON pointer; returns the pointers whose value was already that (stale)."""
    stale = []
    for entry in entries:
        *parents, last = [_unescape(part) for part in entry["pointer"].lstrip("/").split("/")]
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if node.get(last) == entry["value"]:
            stale.append(entry["pointer"])
        node[last] = entry["value"]
    return stale


def is_api_timestamp(value: str) -> bool:
    """Whether `value` is an ISO 8601 UTC timestamp with milliseconds, e.g. 2025-01-15T10:00:00.000Z."""
    if not _TIMESTAMP.fullmatch(value):
        return False
    try:  # the regex checks the layout; strptime rejects impossible dates such as February 30
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return False
    return True


def _response_format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())  # start empty: only the formats registered below are asserted

    @checker.checks("date-time")
    def _date_time(value: object) -> bool:
        # Format assertions apply to strings only; `type` reports other kinds (null, numbers...).
        return not isinstance(value, str) or is_api_timestamp(value)

    return checker


def _escape(segment: str) -> str:
    """Escape one JSON-pointer segment (RFC 6901)."""
    return segment.replace("~", "~0").replace("/", "~1")


def _unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def _shorten(text: str, limit: int = _MAX_MESSAGE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _route(path: str) -> str:
    """The spec-relative route of a request path: no scheme/host, no query string, no /api/v1 prefix."""
    path = urlsplit(path).path if "://" in path else path.split("?", 1)[0].split("#", 1)[0]
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        path = path[len(API_PREFIX) :]
    return path


def _reject_constant(name: str) -> None:
    # Python's json accepts NaN and Infinity; JSON (RFC 8259) and therefore clients do not.
    raise ValueError(f"{name} is not valid JSON")


class Contract:
    """The parsed OpenAPI contract, able to judge one HTTP exchange at a time."""

    _loaded: ClassVar[dict[Path, Contract]] = {}

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self._registry: Registry = Registry().with_resource(_SPEC_URI, DRAFT202012.create_resource(document))
        self._format_checker = _response_format_checker()
        self._validators: dict[str, Draft202012Validator] = {}
        self._paths = tuple(self._index_path(template, item) for template, item in document["paths"].items())

    @classmethod
    def load(cls, path: Path = DEFAULT_SPEC_PATH) -> Contract:
        """Parse the spec at `path` once per process; later calls return the same Contract."""
        key = Path(path).resolve()
        if key not in cls._loaded:
            document = yaml.load(key.read_text(encoding="utf-8"), Loader=_JsonYamlLoader)  # noqa: S506 - a safe loader
            overlay = key.with_name(OVERLAY_NAME)
            if overlay.exists():
                apply_overlay(document, load_overlay(overlay))
            cls._loaded[key] = cls(document)
        return cls._loaded[key]

    # -- the spec ------------------------------------------------------------------------------------

    def operations(self) -> Iterator[Operation]:
        """Every operation of the spec, in document order."""
        for entry in self._paths:
            yield from entry.operations.values()

    def operation(self, method: str, path: str) -> Operation | None:
        """The operation serving `method` on `path` (with or without /api/v1), or None."""
        entry = self._match(_route(path))
        return entry.operations.get(method.upper()) if entry else None

    def _match(self, route: str) -> _PathEntry | None:
        segments = route.split("/")
        candidates = [entry for entry in self._paths if entry.matches(segments)]
        return min(candidates, key=_PathEntry.specificity, default=None)

    def _follow(self, pointer: str) -> Any:
        node: Any = self.document
        for segment in pointer.lstrip("/").split("/") if pointer else []:
            node = node[_unescape(segment)]
        return node

    def _dereference(self, node: Mapping[str, Any], pointer: str) -> tuple[Mapping[str, Any], str]:
        """Follow OpenAPI-level `$ref`s (response objects, path items) to their target and its pointer."""
        seen: set[str] = set()
        while "$ref" in node:
            ref = node["$ref"]
            if not ref.startswith("#/") or ref in seen:
                raise ValueError(f"cannot follow $ref {ref!r} at {pointer}: only acyclic local $refs")
            seen.add(ref)
            pointer = ref[1:]
            node = self._follow(pointer)
        return node, pointer

    def _index_path(self, template: str, item: Mapping[str, Any]) -> _PathEntry:
        item, item_pointer = self._dereference(item, f"/paths/{_escape(template)}")
        operations = {
            method.upper(): self._index_operation(template, method, item[method], f"{item_pointer}/{method}")
            for method in _HTTP_METHODS
            if method in item
        }
        segments = tuple(
            None if segment.startswith("{") and segment.endswith("}") else segment
            for segment in template.split("/")
        )
        return _PathEntry(template, segments, operations)

    def _index_operation(
        self, template: str, method: str, spec: Mapping[str, Any], pointer: str
    ) -> Operation:
        responses = {}
        for code, response in spec.get("responses", {}).items():
            status = str(code).upper()  # YAML reads an unquoted 200 as an int
            response, at = self._dereference(response, f"{pointer}/responses/{_escape(str(code))}")
            content = response.get("content", {})
            has_schema = "schema" in content.get("application/json", {})
            schema_pointer = f"{at}/content/application~1json/schema" if has_schema else None
            responses[status] = DocumentedResponse(
                status, response.get("description", ""), schema_pointer, tuple(content)
            )
        return Operation(
            method.upper(), template, spec.get("operationId"), spec.get("x-doc-status"), responses
        )

    # -- judging an exchange -------------------------------------------------------------------------

    def check(self, method: str, path: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
        """Raise ContractViolation, listing every problem, if the exchange breaks the contract."""
        problems = self.problems(method, path, status, headers, body)
        if problems:
            raise ContractViolation(self._report(method, path, status, body, problems), problems)

    def problems(
        self, method: str, path: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> list[str]:
        """Every way the exchange breaks the contract, as plain sentences; empty when it complies."""
        lowered = {str(name).lower(): str(value) for name, value in headers.items()}
        body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        route = _route(path)
        entry = self._match(route)
        operation = entry.operations.get(method.upper()) if entry else None
        if operation is None:
            return [self._route_problem(method, route, entry), *self._header_problems(lowered)]
        status_problem = self._status_problem(operation, status)
        if status_problem:
            return [status_problem, *self._header_problems(lowered)]
        return [*self._body_problems(operation, status, lowered, body), *self._header_problems(lowered)]

    @staticmethod
    def _route_problem(method: str, route: str, entry: _PathEntry | None) -> str:
        if entry is None:
            return f"{method.upper()} {route} is not in the contract: no path template matches {route!r}"
        documented = ", ".join(entry.operations) or "no method"
        return (
            f"{method.upper()} {route} is not in the contract: {entry.template} documents {documented} only"
        )

    @staticmethod
    def _status_problem(operation: Operation, status: int) -> str | None:
        if operation.response_for(status) or (status >= 400 and status in GLOBAL_STATUSES):
            return None
        documented = ", ".join(operation.responses)
        global_errors = ", ".join(str(code) for code in sorted(GLOBAL_STATUSES) if code >= 400)
        return (
            f"status {status} is an undocumented status for {operation.method} {operation.path} "
            f"(the operation documents {documented}; the global table adds the errors {global_errors})"
        )

    def _body_problems(
        self, operation: Operation, status: int, headers: Mapping[str, str], body: bytes
    ) -> list[str]:
        if status == 204:
            return [] if not body else [f"a 204 response must have an empty body, got {len(body)} bytes"]
        documented = operation.response_for(status)
        schema_pointer = documented.schema_pointer if documented else None
        if status >= 400 and schema_pointer is None:
            schema_pointer = ERROR_SCHEMA  # an error status from the global table: either documented shape
        if schema_pointer is None:
            return []  # documented without a JSON schema: nothing to validate the body against
        content_type = headers.get("content-type")
        media_type = content_type.split(";", 1)[0].strip().lower() if content_type else None
        problems = []
        if media_type != "application/json":
            problems.append(f"Content-Type is {content_type!r}, expected application/json for a JSON body")
        try:
            instance = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
        except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are both ValueErrors
            return [*problems, f"body is not valid JSON where JSON is expected: {_shorten(str(error))}"]
        problems += self._schema_problems(schema_pointer, instance)
        if status >= 400 and schema_pointer != ERROR_SCHEMA and not problems:
            problems += [
                f"{problem} (every error body must take one of the two documented shapes, #{ERROR_SCHEMA})"
                for problem in self._schema_problems(ERROR_SCHEMA, instance)
            ]
        return problems

    def _validator(self, pointer: str) -> Draft202012Validator:
        if pointer not in self._validators:
            # Referencing the schema by its place in the whole document makes every '#/components/...'
            # $ref inside it, inline schemas included, resolve against the spec.
            schema = {"$ref": f"{_SPEC_URI}#{quote(pointer, safe='/~')}"}
            self._validators[pointer] = Draft202012Validator(
                schema, registry=self._registry, format_checker=self._format_checker
            )
        return self._validators[pointer]

    def _schema_problems(self, pointer: str, instance: Any) -> list[str]:
        errors = sorted(
            self._validator(pointer).iter_errors(instance), key=lambda error: (error.json_path, error.message)
        )
        problems = [self._describe(error) for error in errors[:_MAX_SCHEMA_PROBLEMS]]
        if len(errors) > _MAX_SCHEMA_PROBLEMS:
            problems.append(f"... and {len(errors) - _MAX_SCHEMA_PROBLEMS} more schema errors")
        return problems

    @staticmethod
    def _describe(error: ValidationError) -> str:
        message = error.message
        instance = repr(error.instance)
        if len(instance) > _MAX_INSTANCE and message.startswith(instance):
            # jsonschema opens most messages with the failing value; shorten it so the reason stays visible.
            message = _shorten(instance, _MAX_INSTANCE) + message[len(instance) :]
        message = _shorten(message)
        if error.validator == "format":
            message += f" ({_TIMESTAMP_HINT})" if error.validator_value == "date-time" else ""
        elif error.context:  # anyOf / oneOf: name the sub-error closest to matching
            message += f"; closest: {_shorten(best_match(error.context).message, _MAX_MESSAGE // 2)}"
        return f"body at {error.json_path}: {message}"

    @staticmethod
    def _header_problems(headers: Mapping[str, str]) -> list[str]:
        problems = []
        values: dict[str, int] = {}
        for name in RATE_LIMIT_HEADERS:
            raw = headers.get(name.lower())
            if raw is None:
                problems.append(f"missing {name} header (every response must carry it)")
            elif not _NON_NEGATIVE_INT.fullmatch(raw.strip()):
                problems.append(f"{name} header is {_shorten(raw, 40)!r}, expected a non-negative integer")
            else:
                values[name] = int(raw)
        limit, remaining = values.get("RateLimit-Limit"), values.get("RateLimit-Remaining")
        if limit is not None and remaining is not None and remaining > limit:
            problems.append(f"RateLimit-Remaining ({remaining}) exceeds RateLimit-Limit ({limit})")
        return problems

    @staticmethod
    def _report(method: str, path: str, status: int, body: bytes, problems: list[str]) -> str:
        body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        excerpt = body[:_EXCERPT].decode("utf-8", errors="replace")
        if len(body) > _EXCERPT:
            excerpt += "..."
        lines = [f"{method.upper()} {path} -> {status} breaks the contract ({len(problems)} problem(s)):"]
        lines += [f"  - {problem}" for problem in problems]
        lines.append(f"  body ({len(body)} bytes): {excerpt or '<empty>'}")
        return "\n".join(lines)
