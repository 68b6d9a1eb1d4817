"""Validation of requests against the shipped OpenAPI document, compiled once per process.

:func:`compiled` reads :func:`gdpr_daemon.ownbackup.openapi.load_spec` and builds, per
operation, a JSON Schema validator (``jsonschema_rs``, about a microsecond a body) for its
path parameters, its query parameters and each media type of its request body.  The
middleware (:mod:`gdpr_daemon.simulator.app`) runs :meth:`OperationCheck.check` after
authentication and before the handler; a request that breaks the document is refused in
the vendor's error shape:

* a path parameter: 404 ``service_id abc not found`` (that URL names nothing);
* a query parameter or body field: 400 ``invalid request: <field> <what is wrong>``, one
  sentence per problem (at most three), naming the field and never repeating a value
  that may be personal data (record ids, rectify values);
* a body that is neither a form (urlencoded or multipart) nor JSON: 415.

Form fields are text, so they are read the way the document says before validation: a
list field is the field repeated (one value holding commas, or a JSON array as text, is
split; one value holding a JSON object is left whole for the handler), a boolean is
``true`` or ``false`` (any case, so ``True`` too), an integer is its digits.  A call
without a body is read as an empty form.  The body
read here is handed to the handler (:data:`~gdpr_daemon.simulator.params.PARAMS_KEY`), so
it is parsed once.  A schema may carry ``x-invalid-message``, the words used when a value
breaks its ``pattern`` or length (``table_name is not a valid Salesforce API name ...``).

Cost: a GDPR call with a form body spends about 2 microseconds more than without
validation (path fast path for plain ids, one ``is_valid`` on the happy path; the error
sentences are built only for refusals).  ``SimulatorConfig(validate_requests=False)`` or
``gdpr-daemon simulate --no-validate`` turns it off.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
from aiohttp import web

from gdpr_daemon.ownbackup.openapi import load_spec, operations
from gdpr_daemon.simulator.config import ApiError
from gdpr_daemon.simulator.params import PARAMS_KEY, Params, read_form, read_json_object

__all__ = ["INVALID", "OperationCheck", "RequestValidator", "compiled"]

#: Every 400 of the validation starts with this, so a refusal by the document can be told
#: from a refusal by a rule of the account (unknown object, archived service...).
INVALID = "invalid request: "

FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
JSON = "application/json"
MAX_PROBLEMS = 3

_TYPE_WORDS = {
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "null",
}


def _types(schema: Any) -> frozenset[str]:
    """The JSON types a (dereferenced) schema admits, looking into anyOf/oneOf/allOf."""
    if not isinstance(schema, dict):
        return frozenset()
    found: set[str] = set()
    declared = schema.get("type")
    if isinstance(declared, str):
        found.add(declared)
    elif isinstance(declared, list):
        found.update(declared)
    for value in [schema["const"]] if "const" in schema else schema.get("enum", []):
        found.add(_json_type(value))
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, []):
            found |= _types(branch)
    return frozenset(found)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _integer(text: str) -> int | str:
    stripped = text.strip()
    digits = stripped[1:] if stripped[:1] in ("-", "+") else stripped
    return int(stripped) if digits.isascii() and digits.isdigit() else text


def _scalar(text: str, types: frozenset[str]) -> Any:
    """A text read as the type the schema wants (unchanged when it is not one)."""
    if "boolean" in types:
        lowered = text.strip().lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        return text
    if "integer" in types or "number" in types:
        return _integer(text)
    return text


_TEXT = frozenset({"string"})
_ANNOTATIONS = frozenset({"description", "title", "examples", "example", "default"})


@dataclass(frozen=True, slots=True)
class _Field:
    types: frozenset[str]
    item_types: frozenset[str]

    @classmethod
    def of(cls, schema: Any) -> _Field:
        items = schema.get("items") if isinstance(schema, dict) else None
        return cls(_types(schema), _types(items))

    def read(self, name: str, values: list[str]) -> Any:
        """The value of a text field (form, query or path) as the schema types it."""
        if self.types <= _TEXT:  # the common case: text stays text
            return values[0] if len(values) == 1 else values
        if "array" in self.types:
            return [_scalar(v, self.item_types) for v in self._items(name, values)]
        if len(values) > 1:
            return values  # a scalar given twice: the validator says it must be one value
        return _scalar(values[0], self.types)

    @staticmethod
    def _items(name: str, values: list[str]) -> list[Any]:
        if len(values) != 1:
            return values
        text = values[0].strip()
        if text.startswith("{"):  # an object as JSON text, which the handler reads
            return values
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except ValueError:
                raise ApiError(400, f"{INVALID}{name} is not a valid JSON array") from None
            if not isinstance(parsed, list):
                raise ApiError(400, f"{INVALID}{name} must be a list")
            return parsed
        if "," in text:
            return [part.strip() for part in text.split(",")]
        return values


_UNKNOWN = _Field(_TEXT, frozenset())  # a field the schema does not list: read as text


class _Schema:
    """One object schema, compiled, with the fields its texts are read by."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.validator = jsonschema_rs.validator_for(schema)
        self.fields = {name: _Field.of(sub) for name, sub in schema.get("properties", {}).items()}
        self.required = bool(schema.get("required"))
        # Fields that are plain non-negative ids: digits alone prove them valid (hot path).
        self.ids = frozenset(
            name
            for name, sub in schema.get("properties", {}).items()
            if set(sub) - _ANNOTATIONS == {"type", "minimum", "format"}
            and sub["type"] == "integer"
            and sub["minimum"] == 0
        )

    def typed(self, texts: Mapping[str, list[str]]) -> dict[str, Any]:
        fields = self.fields
        return {name: fields.get(name, _UNKNOWN).read(name, vs) for name, vs in texts.items()}

    def first_bad_field(self, instance: dict[str, Any]) -> str | None:
        """The first field of ``instance`` that breaks the schema, or None if all is well."""
        try:
            if self.validator.is_valid(instance):
                return None
            errors = list(self.validator.iter_errors(instance))
        except (ValueError, OverflowError):
            return next(iter(instance), "")
        for error in errors:
            if error.instance_path:
                return str(error.instance_path[0])
        return next(iter(instance), "")

    def problems(self, instance: Any) -> str | None:
        """None when valid; else one sentence per problem (at most three)."""
        try:
            if self.validator.is_valid(instance):
                return None
            errors = list(self.validator.iter_errors(instance))
        except (ValueError, OverflowError):  # e.g. a number no validator can hold
            return "a value is out of range"
        errors.sort(key=_priority)
        sentences = dict.fromkeys(_sentence(e, self.schema) for e in errors)
        return "; ".join(list(sentences)[:MAX_PROBLEMS])


def _priority(error: jsonschema_rs.ValidationError) -> int:
    kind = type(error.kind).__name__
    return {"Required": 0, "AdditionalProperties": 2}.get(kind, 1)


def _at(schema: Any, path: Iterable[Any]) -> Any:
    node = schema
    for step in path:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return {}
    return node


def _expected(schema: Any) -> str:
    """What a schema wants, in words: ``one of csv, sql``, ``an integer or 'last'``."""
    if not isinstance(schema, dict):
        return "valid"
    if "const" in schema:
        return repr(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(str(v) for v in schema["enum"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(_expected(b) for b in schema[key])
    types = schema.get("type")
    names = [types] if isinstance(types, str) else list(types or [])
    return " or ".join(_TYPE_WORDS.get(t, t) for t in names) or "valid"


def _name(path: Iterable[Any]) -> str:
    out = ""
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out or "the body"


def _sentence(error: jsonschema_rs.ValidationError, root: dict[str, Any]) -> str:
    """One sentence naming the field; values are shown only for enums (never personal)."""
    kind = error.kind
    info: dict[str, Any] = kind.as_dict()
    name = _name(error.instance_path)
    where = _at(root, list(error.schema_path)[:-1])
    kind_name = type(kind).__name__
    if kind_name == "Required":
        prefix = "" if name == "the body" else f"{name}."
        return f"{prefix}{info['property']} is required"
    if kind_name == "AdditionalProperties":
        known = ", ".join(where.get("properties", {})) or "none"
        return f"unknown field {', '.join(info['unexpected'])} (known fields: {known})"
    custom = where.get("x-invalid-message") if isinstance(where, dict) else None
    if custom and kind_name in ("Pattern", "MinLength", "MaxLength"):
        return f"{name} {custom}"
    if kind_name == "Type":
        return f"{name} must be {' or '.join(_TYPE_WORDS.get(t, t) for t in info['types'])}"
    if kind_name in ("Enum", "Constant"):
        shown = error.instance
        tail = f", not {shown!r}" if isinstance(shown, str) and len(shown) <= 40 else ""
        return f"{name} must be {_expected(where)}{tail}"
    if kind_name in ("AnyOf", "OneOfNotValid"):
        return f"{name} must be {_expected(where)}"
    if kind_name == "MinLength":
        return f"{name} must not be empty" if info["limit"] == 1 else (
            f"{name} must have at least {info['limit']} characters"
        )
    if kind_name == "Minimum":
        return f"{name} must be at least {info['limit']}"
    if kind_name == "Maximum":
        return f"{name} must be at most {info['limit']}"
    if kind_name == "Pattern":
        return f"{name} must match the pattern {info['pattern']}"
    return f"{name} is not valid ({kind_name})"


def _params_schema(params: Iterable[dict[str, Any]], where: str) -> _Schema | None:
    chosen = [p for p in params if p.get("in") == where]
    if not chosen:
        return None
    return _Schema(
        {
            "type": "object",
            "properties": {p["name"]: p.get("schema", {}) for p in chosen},
            "required": [p["name"] for p in chosen if p.get("required")],
        }
    )


class OperationCheck:
    """The checks of one operation: path, query, body (each absent when it has none)."""

    def __init__(self, label: str, path: _Schema | None, query: _Schema | None,
                 bodies: dict[str, _Schema]) -> None:  # fmt: skip
        self.label = label
        self.path = path
        self.query = query
        self.bodies = bodies

    async def check(self, request: web.Request) -> None:
        """Refuse the request (ApiError) unless it matches the document; keep its body."""
        if self.path is not None:
            self._check_path(request.match_info)
        if self.query is not None and (request.query or self.query.required):
            texts = {k: request.query.getall(k) for k in request.query}
            problem = self.query.problems(self.query.typed(texts))
            if problem:
                raise ApiError(400, INVALID + problem)
        if self.bodies:
            request[PARAMS_KEY] = await self._check_body(request)

    def _check_path(self, match_info: Mapping[str, str]) -> None:
        path = self.path
        assert path is not None
        values = {k: [v] for k, v in match_info.items() if k in path.fields}
        if all(k in path.ids and v.isascii() and v.isdigit() for k, (v,) in values.items()):
            return
        bad = path.first_bad_field(path.typed(values))
        if bad is not None:
            text = values[bad][0] if bad in values else ""
            raise ApiError(404, f"{bad} {text[:60]} not found")

    async def _check_body(self, request: web.Request) -> Params:
        if not request.body_exists:
            schema = self.bodies.get(FORM) or next(iter(self.bodies.values()))
            instance: Any = {}
            params = Params({})
        elif request.content_type == JSON and JSON in self.bodies:
            schema = self.bodies[JSON]
            try:
                data = await read_json_object(request)
            except ApiError as exc:
                raise ApiError(400, INVALID + exc.message) from None
            if data is None:
                raise ApiError(400, INVALID + "the request body must be a JSON object, not null")
            instance = data
            params = Params.from_json(data)
        elif request.content_type in (FORM, MULTIPART) and request.content_type in self.bodies:
            schema = self.bodies[request.content_type]
            try:
                form = await read_form(request)
            except ApiError as exc:
                raise ApiError(400, INVALID + exc.message) from None
            params = Params.from_form(form)
            instance = schema.typed(params.texts())
        else:
            kinds = " or ".join(sorted(self.bodies))
            raise ApiError(415, f"the request body is {request.content_type}; send {kinds}")
        problem = schema.problems(instance)
        if problem:
            raise ApiError(400, INVALID + problem)
        return params


class RequestValidator:
    """Every operation of the document, compiled, by (METHOD, path template)."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.operations: dict[tuple[str, str], OperationCheck] = {}
        for op in operations(spec):
            bodies = {}
            if op.request_body is not None:
                for media_type, content in op.request_body.get("content", {}).items():
                    bodies[media_type] = _Schema(content.get("schema", {}))
            self.operations[(op.method, op.path)] = OperationCheck(
                f"{op.method} {op.path}",
                _params_schema(op.parameters, "path"),
                _params_schema(op.parameters, "query"),
                bodies,
            )

    def for_routes(self, router: web.UrlDispatcher) -> dict[str, OperationCheck]:
        """The check of each named route whose method and path the document describes."""
        out = {}
        for route in router.routes():
            if route.name is None or route.resource is None:
                continue
            check = self.operations.get((route.method, route.resource.canonical))
            if check is not None:
                out[route.name] = check
        return out


@functools.cache
def compiled() -> RequestValidator:
    """The validator of the shipped document, built on first use and shared."""
    return RequestValidator(load_spec())
