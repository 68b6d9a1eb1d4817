"""The OpenAPI 3.1 document of the OwnBackup API as the client and the simulator speak it.

``openapi.yaml`` ships inside this package and is the one description of every call, its
request bodies (form-encoded and JSON share one schema), parameters, answers and the
vendor's error shape.  The simulator validates requests against it
(:mod:`gdpr_daemon.simulator.conformance`); the contract tests validate answers against it.

    from gdpr_daemon.ownbackup.openapi import load_spec, operations, response_schema

    spec = load_spec()                                  # a fresh dict each call
    for op in operations(spec): ...                      # method, path, operation object
    schema = response_schema(spec, "GET", "/api/v1/services", 200)   # no $ref left

Schemas are handed out *dereferenced* (every ``$ref`` replaced by a copy of its target), so
a JSON Schema validator needs no resolver.  The document has no recursive schema; a ``$ref``
may carry annotation keywords beside it (``description``, ``examples``...), never
validation keywords, which :func:`dereference` checks.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "HTTP_METHODS",
    "SPEC_RESOURCE",
    "Operation",
    "dereference",
    "load_spec",
    "operations",
    "response_schema",
    "spec_text",
]

SPEC_RESOURCE = "openapi.yaml"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# Keywords that may stand beside a $ref: they describe, they do not constrain.
_ANNOTATIONS = frozenset(
    {"description", "title", "examples", "example", "default", "deprecated", "summary"}
)


def spec_text() -> str:
    """The document as shipped (YAML text)."""
    return resources.files(__package__).joinpath(SPEC_RESOURCE).read_text(encoding="utf-8")


@functools.cache
def _loaded() -> dict[str, Any]:
    data = yaml.safe_load(spec_text())
    if not isinstance(data, dict) or not str(data.get("openapi", "")).startswith("3.1"):
        raise RuntimeError(f"{SPEC_RESOURCE} is not an OpenAPI 3.1 document")
    return data


def load_spec() -> dict[str, Any]:
    """The OpenAPI document as a dict (parsed once; each caller gets its own copy)."""
    return copy.deepcopy(_loaded())


def _pointer(spec: Mapping[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"only local references are supported, not {ref!r}")
    node: Any = spec
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def dereference(spec: Mapping[str, Any], node: Any, _seen: tuple[str, ...] = ()) -> Any:
    """A copy of ``node`` with every local ``$ref`` replaced by its (dereferenced) target."""
    if isinstance(node, list):
        return [dereference(spec, item, _seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        if ref in _seen:
            raise ValueError(f"recursive reference {ref!r} cannot be dereferenced")
        extra = set(node) - {"$ref"} - _ANNOTATIONS
        if extra:
            raise ValueError(f"$ref {ref!r} has validation keywords beside it: {sorted(extra)}")
        target = dereference(spec, _pointer(spec, ref), (*_seen, ref))
        if not isinstance(target, dict):
            return target
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return {key: dereference(spec, value, _seen) for key, value in node.items()}


@dataclass(frozen=True)
class Operation:
    """One operation of the document, with its path-level and own parameters merged."""

    method: str  # upper case
    path: str
    operation_id: str
    parameters: tuple[dict[str, Any], ...]
    request_body: dict[str, Any] | None
    responses: dict[str, Any]
    security: list[dict[str, Any]] | None


def operations(spec: Mapping[str, Any]) -> Iterator[Operation]:
    """Every operation, dereferenced, in document order."""
    for path, item in spec.get("paths", {}).items():
        shared = [dereference(spec, p) for p in item.get("parameters", [])]
        for method in HTTP_METHODS:
            op = item.get(method)
            if op is None:
                continue
            own = [dereference(spec, p) for p in op.get("parameters", [])]
            names = {(p["name"], p["in"]) for p in own}
            params = [p for p in shared if (p["name"], p["in"]) not in names] + own
            body = op.get("requestBody")
            yield Operation(
                method=method.upper(),
                path=path,
                operation_id=op.get("operationId", f"{method} {path}"),
                parameters=tuple(params),
                request_body=dereference(spec, body) if body is not None else None,
                responses=dereference(spec, op.get("responses", {})),
                security=op.get("security", spec.get("security")),
            )


def response_schema(
    spec: Mapping[str, Any],
    method: str,
    path: str,
    status: int,
    media_type: str = "application/json",
) -> dict[str, Any]:
    """The dereferenced schema of an answer; KeyError when the document has none for it.

    ``path`` is the template (``/api/v1/services/{service_id}``); a status falls back to
    its range (``5XX``) and then to ``default`` as OpenAPI says.
    """
    item = spec["paths"][path][method.lower()]
    responses = item["responses"]
    for key in (str(status), f"{str(status)[0]}XX", "default"):
        if key in responses:
            response = dereference(spec, responses[key])
            break
    else:
        raise KeyError(f"{method.upper()} {path} documents no answer with status {status}")
    content = response.get("content", {})
    if media_type not in content:
        raise KeyError(f"{method.upper()} {path} {status} documents no {media_type} answer")
    schema: dict[str, Any] = content[media_type]["schema"]
    return schema
