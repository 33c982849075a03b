"""Google's published discovery documents as the contract: routing and request validation.

Why discovery documents: they are the machine-readable REST surface Google publishes for each
API (``google-api-python-client`` ships a snapshot), so a double that routes by their path
templates and validates by their schemas cannot drift into an API of its own invention. What a
real front end would reject and the schemas can tell us is checked here:

* a field the schema does not know (the real API answers ``Unknown name "x"``);
* a wrong JSON type (string where an object is expected, ...);
* a field marked output only (``readOnly`` or a description starting "Output only");
* a missing field whose description starts "Required" (the discovery format has no other
  marker; the ``required`` flag is honoured too where present). Partial updates (PATCH) carry
  only the fields being changed, so required checks are skipped for them.

The REST transports of the GAPIC clients send enums as integers (``$alt=json;enum-encoding=int``)
and int64 values as strings; both are legal proto3 JSON and are accepted. Integer enums are
turned back into names through the client's own proto descriptors when those are importable, so
the services can reason about ``httpMethod == "POST"`` whatever encoding arrived.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import importlib.util
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

# service key -> (discovery document, proto package used to decode integer enums)
SERVICES: dict[str, tuple[str, str | None]] = {
    "bigquery": ("bigquery.v2.json", None),
    "dataproc": ("dataproc.v1.json", "google.cloud.dataproc.v1"),
    "scheduler": ("cloudscheduler.v1.json", "google.cloud.scheduler.v1"),
    "storage": ("storage.v1.json", None),  # held by the GCS proxy in front of fake-gcs-server
    "monitoring": ("monitoring.v3.json", None),  # alertPolicies (the log-based alert on failed jobs)
}
# The proto modules that register those packages in the default descriptor pool.
_PROTO_MODULES = {"dataproc": "google.cloud.dataproc_v1", "scheduler": "google.cloud.scheduler_v1"}

# "Required if the condition exists" / "Required for log-based ..." (monitoring.v3) are conditional:
# the service's own rules check them (tests/gcp_double/monitoring.py), not the schema walk.
_REQUIRED = re.compile(r"^\s*\[?Required\b(?!\s+(if|when|for)\b)")
_OUTPUT_ONLY = re.compile(r"^\s*(\[?Optional\]?\.?\s*)?\[?Output[ -]only\]?", re.IGNORECASE)
_DURATION = re.compile(r"^-?\d+(\.\d{1,9})?s$")
_DATETIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
_INT = re.compile(r"^-?\d+$")
# Query parameters every Google REST endpoint takes besides the method's own.
_TRANSPORT_PARAMS = {"$alt", "alt", "prettyPrint", "fields", "key", "quotaUser", "$.xgafv",
                     "access_token", "oauth_token", "callback", "uploadType", "upload_protocol",
                     "userIp", "trace"}


class DiscoveryUnavailable(RuntimeError):
    """google-api-python-client (which ships the documents) is not installed."""


def documents_dir() -> Path:
    """Where google-api-python-client keeps its discovery snapshot (found without importing it)."""
    spec = importlib.util.find_spec("googleapiclient")
    if spec is None or not spec.submodule_search_locations:
        raise DiscoveryUnavailable(
            "google-api-python-client is not installed; install the dev extra: "
            "pip install -e '.[gcp,dev]'")
    return Path(list(spec.submodule_search_locations)[0]) / "discovery_cache" / "documents"


@cache
def load_document(service: str) -> dict[str, Any]:
    return json.loads((documents_dir() / SERVICES[service][0]).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Method:
    """One REST method: how to recognise it on the wire and which schemas it speaks."""

    service: str
    id: str
    verb: str
    template: str
    regex: re.Pattern[str]
    names: tuple[str, ...]
    request: str | None
    response: str | None
    query_params: frozenset[str]
    weight: int

    @property
    def short(self) -> str:
        """``workflowTemplates.create`` rather than the full discovery id."""
        return ".".join(self.id.split(".")[-2:])


@dataclass(frozen=True)
class Problem:
    """A contract violation found in a request (or, when asked, in one of our responses)."""

    field: str
    kind: str  # unknown-field | wrong-type | output-only | missing-required | bad-enum | unknown-param
    detail: str

    def __str__(self) -> str:
        return f"{self.field or '<body>'}: {self.kind}: {self.detail}"


def _compile(service: str, doc: dict[str, Any], m: dict[str, Any]) -> Method:
    flat = doc.get("servicePath", "") + m.get("flatPath", m["path"])
    names: list[str] = []
    pattern = ""
    for i, part in enumerate(re.split(r"(\{[^}]+\})", flat)):
        if i % 2:
            names.append(part[1:-1].lstrip("+"))
            pattern += "([^/]+)"
        else:
            pattern += re.escape(part)
    params = frozenset(k for k, v in m.get("parameters", {}).items() if v.get("location") == "query")
    literal = len(re.sub(r"\{[^}]+\}", "", flat))
    return Method(service=service, id=m["id"], verb=m["httpMethod"], template="/" + flat,
                  regex=re.compile("^/" + pattern + "$"), names=tuple(names),
                  request=(m.get("request") or {}).get("$ref"),
                  response=(m.get("response") or {}).get("$ref"),
                  query_params=params, weight=literal)


def _walk_methods(resources: dict[str, Any]):
    for res in resources.values():
        yield from res.get("methods", {}).values()
        yield from _walk_methods(res.get("resources", {}))


class Router:
    """Maps (verb, path) to a discovery method. Earlier services win on identical paths."""

    def __init__(self, services: list[str]) -> None:
        self.services = services
        ranked: dict[str, list[tuple[int, Method]]] = {}
        self.by_id: dict[str, Method] = {}
        for rank, svc in enumerate(services):
            doc = load_document(svc)
            for m in _walk_methods(doc.get("resources", {})):
                meth = _compile(svc, doc, m)
                self.by_id[meth.id] = meth
                ranked.setdefault(meth.verb, []).append((rank, meth))
        # Most literal text first (":instantiate" beats "{id}"), then service order.
        self._by_verb = {verb: [m for _, m in sorted(lst, key=lambda rm: (-rm[1].weight, rm[0]))]
                         for verb, lst in ranked.items()}

    def match(self, verb: str, path: str) -> tuple[Method, dict[str, str]] | None:
        from urllib.parse import unquote

        for meth in self._by_verb.get(verb, []):
            hit = meth.regex.match(path)
            if hit:
                return meth, {n: unquote(v) for n, v in zip(meth.names, hit.groups())}
        return None


class Validator:
    """Checks JSON values against one service's schemas and normalises integer enums."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.schemas: dict[str, Any] = load_document(service)["schemas"]
        self._pool = _descriptor_pool(service)
        self._package = SERVICES[service][1]

    # -- public -------------------------------------------------------------------------
    def check_request(self, method: Method, body: Any, *, partial: bool,
                      echo: dict[str, Any] | None = None) -> tuple[Any, list[Problem]]:
        """Validate a request body. ``echo`` lists output-only fields that may come back
        unchanged because they also name the resource in the URL (Dataproc's PUT carries
        ``template.name``)."""
        problems: list[Problem] = []
        if method.request is None:
            if body not in (None, {}, b"", ""):
                problems.append(Problem("", "unknown-field", f"{method.id} takes no request body"))
            return body, problems
        out = self._value({"$ref": method.request}, body, "", problems, partial=partial,
                          echo=echo or {}, response=False)
        return out, problems

    def check_response(self, method: Method, body: Any) -> list[Problem]:
        """Validate what the double sends back: unknown fields and types only."""
        problems: list[Problem] = []
        if method.response is not None and body is not None:
            self._value({"$ref": method.response}, body, "", problems, partial=True, echo={},
                        response=True)
        return problems

    def check_schema(self, schema_name: str, body: Any, *, partial: bool = False
                     ) -> tuple[Any, list[Problem]]:
        problems: list[Problem] = []
        out = self._value({"$ref": schema_name}, body, "", problems, partial=partial, echo={},
                          response=False)
        return out, problems

    @staticmethod
    def check_query(method: Method, query: dict[str, str]) -> list[Problem]:
        return [Problem(k, "unknown-param", f"{method.id} has no query parameter {k!r}")
                for k in query if k not in method.query_params and k not in _TRANSPORT_PARAMS]

    # -- the walk ---------------------------------------------------------------------
    def _value(self, prop: dict[str, Any], value: Any, path: str, problems: list[Problem], *,
               partial: bool, echo: dict[str, Any], response: bool,
               owner: str | None = None, fname: str | None = None) -> Any:
        if value is None:  # proto3 JSON: null means "default"; BigQuery uses it to clear.
            return None
        ref = prop.get("$ref")
        if ref:
            return self._object(ref, value, path, problems, partial=partial, echo=echo,
                                response=response)
        kind = prop.get("type")
        if kind == "any":
            return value
        if kind == "array":
            if not isinstance(value, list):
                problems.append(Problem(path, "wrong-type", f"expected an array, got {_jt(value)}"))
                return value
            items = prop.get("items", {})
            return [self._value(items, v, f"{path}[{i}]", problems, partial=partial, echo={},
                                response=response, owner=owner, fname=fname)
                    for i, v in enumerate(value)]
        if kind == "object":
            if not isinstance(value, dict):
                problems.append(Problem(path, "wrong-type", f"expected an object, got {_jt(value)}"))
                return value
            if "properties" in prop:  # an inline message (GCS nests most of its settings so)
                return self._fields(prop, fname or "object", value, path, problems, partial=partial,
                                    echo={}, response=response)
            extra = prop.get("additionalProperties")
            if extra is None:
                return value
            return {k: self._value(extra, v, f"{path}.{k}", problems, partial=partial, echo={},
                                   response=response) for k, v in value.items()}
        if "enum" in prop:
            return self._enum(prop, value, path, problems, owner, fname)
        self._scalar(kind, prop.get("format"), value, path, problems)
        return value

    def _object(self, ref: str, value: Any, path: str, problems: list[Problem], *,
                partial: bool, echo: dict[str, Any], response: bool) -> Any:
        schema = self.schemas.get(ref, {})
        if not isinstance(value, dict):
            problems.append(Problem(path, "wrong-type", f"expected {ref} object, got {_jt(value)}"))
            return value
        props = schema.get("properties", {})
        if not props and schema.get("additionalProperties") is None:
            for k in value:  # an empty message (RunJobRequest, Empty, ...)
                problems.append(Problem(_join(path, k), "unknown-field", f'{ref} has no field "{k}"'))
            return value
        return self._fields(schema, ref, value, path, problems, partial=partial, echo=echo,
                            response=response)

    def _fields(self, schema: dict[str, Any], ref: str, value: dict[str, Any], path: str,
                problems: list[Problem], *, partial: bool, echo: dict[str, Any],
                response: bool) -> dict[str, Any]:
        """The fields of one message, named ``ref`` (a schema id, or an inline field's name)."""
        props = schema.get("properties", {})
        out: dict[str, Any] = {}
        for key, val in value.items():
            where = _join(path, key)
            sub = props.get(key)
            if sub is None:
                if "@type" == key and response:
                    out[key] = val
                    continue
                problems.append(Problem(where, "unknown-field", f'{ref} has no field "{key}"'))
                out[key] = val
                continue
            if not response and _is_output_only(sub) and val is not None:
                if not (path == "" and key in echo and echo[key] == val):
                    problems.append(Problem(where, "output-only",
                                            f"{ref}.{key} is output only and must not be sent"))
            out[key] = self._value(sub, val, where, problems, partial=partial, echo={},
                                   response=response, owner=ref, fname=key)
        if not partial and not response:
            required = set(schema.get("required", []))
            for key, sub in props.items():
                if (key in required or sub.get("required") is True
                        or _REQUIRED.match(sub.get("description", ""))):
                    got = value.get(key)
                    # proto3 cannot tell "" / [] / {} (map) from unset; a sent message is set.
                    if got is None or (got in ("", [], {}) and not (got == {} and "$ref" in sub)):
                        problems.append(Problem(_join(path, key), "missing-required",
                                                f"{ref}.{key} is required"))
        return out

    def _enum(self, prop: dict[str, Any], value: Any, path: str, problems: list[Problem],
              owner: str | None, fname: str | None) -> Any:
        names = prop["enum"]
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            problems.append(Problem(path, "wrong-type", f"expected an enum, got {_jt(value)}"))
            return value
        if isinstance(value, str):
            if value not in names:
                problems.append(Problem(path, "bad-enum", f"{value!r} is not one of {names}"))
            return value
        enum_desc = self._enum_descriptor(owner, fname)
        if enum_desc is not None:
            val = enum_desc.values_by_number.get(value)
            if val is None:
                problems.append(Problem(path, "bad-enum", f"{value} is not a {enum_desc.name}"))
                return value
            return val.name
        if value < 0:
            problems.append(Problem(path, "bad-enum", f"{value} is not a valid enum number"))
        return value  # unknown numbering: keep the number, the clients read it back fine

    def _enum_descriptor(self, owner: str | None, fname: str | None):
        if self._pool is None or owner is None or fname is None:
            return None
        try:
            msg = self._pool.FindMessageTypeByName(f"{self._package}.{owner}")
        except KeyError:
            return None
        fld = msg.fields_by_camelcase_name.get(fname)
        return fld.enum_type if fld is not None else None

    @staticmethod
    def _scalar(kind: str | None, fmt: str | None, value: Any, path: str,
                problems: list[Problem]) -> None:
        def bad(expected: str) -> None:
            problems.append(Problem(path, "wrong-type", f"expected {expected}, got {_jt(value)} "
                                                        f"{json.dumps(value)[:40]}"))

        if kind == "boolean":
            if not isinstance(value, bool):
                bad("a boolean")
        elif kind == "integer":
            if isinstance(value, bool) or not (isinstance(value, int)
                                               or (isinstance(value, str) and _INT.match(value))):
                bad(f"an integer ({fmt})")
        elif kind == "number":
            if isinstance(value, bool) or not (isinstance(value, (int, float))
                                               or value in ("NaN", "Infinity", "-Infinity")):
                bad(f"a number ({fmt})")
        elif kind == "string":
            if fmt in ("int64", "uint64"):
                if isinstance(value, bool) or not (isinstance(value, int)
                                                   or (isinstance(value, str) and _INT.match(value))):
                    bad(f"an {fmt} (a decimal string)")
            elif not isinstance(value, str):
                bad("a string")
            elif fmt == "google-duration" and not _DURATION.match(value):
                bad('a duration like "600s"')
            elif fmt in ("google-datetime", "date-time") and not _DATETIME.match(value):
                bad("an RFC 3339 timestamp")
            elif fmt == "date" and not _DATE.match(value):
                bad('an RFC 3339 date like "2024-01-31"')
            elif fmt == "byte":
                try:
                    base64.b64decode(value.replace("-", "+").replace("_", "/") + "==", validate=False)
                except (binascii.Error, ValueError):
                    bad("base64 bytes")


def _is_output_only(prop: dict[str, Any]) -> bool:
    return bool(prop.get("readOnly")) or bool(_OUTPUT_ONLY.match(prop.get("description", "")))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _jt(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
            float: "number"}.get(type(value), type(value).__name__)


def _descriptor_pool(service: str):
    """The default protobuf pool, once the client's proto module has registered its types."""
    module = _PROTO_MODULES.get(service)
    if module is None:
        return None
    try:
        importlib.import_module(module)
        from google.protobuf import descriptor_pool
    except ImportError:
        return None
    return descriptor_pool.Default()

