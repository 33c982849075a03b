"""What GCS checks beyond the discovery schema, and the wire formats its uploads use.

Why a rule module of its own: storage.v1.json is looser than the Dataproc or Scheduler documents.
It marks no field output only, states no enum for ``iamConfiguration.publicAccessPrevention``,
lifecycle action types or storage classes (they live in descriptions), and says which fields are
required only in ``annotations``. fake-gcs-server, behind the proxy, checks none of it and drops
what it does not model (lifecycle, IAM configuration, labels). These rules restate, from Google's
documentation, the parts funnelops relies on, so a body Google would refuse is refused here:

* the values GCS accepts for storage classes, public-access prevention, RPO and lifecycle
  actions, and a lifecycle rule's shape (an action with a type, ``storageClass`` iff
  ``SetStorageClass``, at least one condition);
* required fields (``name`` on ``buckets.insert``, an object name on uploads);
* enum-valued query parameters (``projection``, ``predefinedAcl``, ...) and int64 ones
  (``ifGenerationMatch``, ...);
* fields the server sets (``id``, ``generation``, ``timeCreated``...). Google *ignores* these on
  writes rather than refusing them; the proxy is stricter on purpose (a client that sends one
  believes it controls something it does not), except on full-resource ``update`` (PUT), whose
  read-modify-write convention sends back what was read;
* legacy ACLs on a bucket with uniform bucket-level access (Google answers 400).
"""

from __future__ import annotations

import json
import re
from typing import Any

from .discovery import Method, Problem, load_document

STORAGE_CLASSES = ("STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE", "MULTI_REGIONAL", "REGIONAL",
                   "DURABLE_REDUCED_AVAILABILITY")
PUBLIC_ACCESS_PREVENTION = ("enforced", "inherited")
LIFECYCLE_ACTIONS = ("Delete", "SetStorageClass", "AbortIncompleteMultipartUpload")
RPO = ("DEFAULT", "ASYNC_TURBO")

BUCKET_OUTPUT_ONLY = frozenset({
    "id", "kind", "selfLink", "projectNumber", "metageneration", "generation", "timeCreated",
    "updated", "etag", "owner", "locationType", "softDeleteTime", "hardDeleteTime", "satisfiesPZS",
    "satisfiesPZI", "iamConfiguration.uniformBucketLevelAccess.lockedTime",
    "iamConfiguration.bucketPolicyOnly.lockedTime", "softDeletePolicy.effectiveTime",
    "retentionPolicy.effectiveTime", "retentionPolicy.isLocked", "autoclass.toggleTime",
    "autoclass.terminalStorageClassUpdateTime"})
OBJECT_OUTPUT_ONLY = frozenset({
    "id", "kind", "selfLink", "mediaLink", "bucket", "generation", "metageneration", "timeCreated",
    "updated", "timeDeleted", "timeStorageClassUpdated", "timeFinalized", "size", "etag", "owner",
    "componentCount", "softDeleteTime", "hardDeleteTime", "retentionExpirationTime"})
_OUTPUT_ONLY = {"Bucket": BUCKET_OUTPUT_ONLY, "Object": OBJECT_OUTPUT_ONLY}
_INT = re.compile(r"^-?\d+$")


def _query_spec(method_id: str) -> dict[str, Any]:
    doc = load_document("storage")
    resource, name = method_id.split(".")[-2:]
    res = doc["resources"][resource] if resource in doc["resources"] else {}
    return res.get("methods", {}).get(name, {}).get("parameters", {})


def check_query_values(method: Method, query: dict[str, str]) -> list[Problem]:
    """Enum and int64 query parameters hold legal values (Google answers 400 otherwise)."""
    problems: list[Problem] = []
    spec = _query_spec(method.id)
    for key, value in query.items():
        p = spec.get(key)
        if p is None or p.get("location") != "query":
            continue
        if "enum" in p and value not in p["enum"]:
            problems.append(Problem(key, "bad-enum", f"{value!r} is not one of {p['enum']}"))
        elif p.get("format") in ("int64", "int32", "uint32") and not _INT.match(value):
            problems.append(Problem(key, "wrong-type", f"expected an integer, got {value!r}"))
        elif p.get("type") == "boolean" and value.lower() not in ("true", "false"):
            # case-insensitive: the official client sends Python's "True" and GCS takes it
            problems.append(Problem(key, "wrong-type", f"expected true or false, got {value!r}"))
    return problems


def output_only(schema: str, body: Any) -> list[Problem]:
    """Server-set fields present in a body of ``schema`` (see the module note on strictness)."""
    if not isinstance(body, dict):
        return []
    found = []
    for dotted in sorted(_OUTPUT_ONLY.get(schema, ())):
        node: Any = body
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            found.append(Problem(dotted, "output-only", f"{schema}.{dotted} is set by the server"))
    return found


def _enum(value: Any, allowed: tuple[str, ...], field: str) -> list[Problem]:
    if value is None or value in allowed:
        return []
    return [Problem(field, "bad-enum", f"{value!r} is not one of {list(allowed)}")]


def lifecycle_problems(lifecycle: Any) -> list[Problem]:
    """A lifecycle rule is an action with a known type plus at least one condition."""
    if not isinstance(lifecycle, dict) or not isinstance(lifecycle.get("rule"), list):
        return []
    problems: list[Problem] = []
    for i, rule in enumerate(lifecycle["rule"]):
        where = f"lifecycle.rule[{i}]"
        if not isinstance(rule, dict):
            continue
        action = rule.get("action")
        if not isinstance(action, dict) or not action.get("type"):
            problems.append(Problem(f"{where}.action.type", "missing-required",
                                    "a lifecycle rule needs an action with a type"))
            action = {}
        problems += _enum(action.get("type"), LIFECYCLE_ACTIONS, f"{where}.action.type")
        if action.get("type") == "SetStorageClass":
            if not action.get("storageClass"):
                problems.append(Problem(f"{where}.action.storageClass", "missing-required",
                                        "SetStorageClass needs a target storageClass"))
        elif action.get("storageClass") is not None:
            problems.append(Problem(f"{where}.action.storageClass", "unexpected",
                                    "storageClass is only for the SetStorageClass action"))
        problems += _enum(action.get("storageClass"), STORAGE_CLASSES, f"{where}.action.storageClass")
        cond = rule.get("condition")
        if not isinstance(cond, dict) or not cond:
            problems.append(Problem(f"{where}.condition", "missing-required",
                                    "a lifecycle rule needs at least one condition"))
        elif isinstance(cond.get("age"), int) and cond["age"] < 0:
            problems.append(Problem(f"{where}.condition.age", "out-of-range", "age must be >= 0"))
    return problems


def bucket_problems(method: Method, body: Any, query: dict[str, str]) -> list[Problem]:
    """Semantic checks of a Bucket body on insert / patch / update."""
    if not isinstance(body, dict):
        return []
    problems: list[Problem] = []
    if method.id == "storage.buckets.insert" and not body.get("name"):
        problems.append(Problem("name", "missing-required", "Bucket.name is required on insert"))
    problems += _enum(body.get("storageClass"), STORAGE_CLASSES, "storageClass")
    problems += _enum(body.get("rpo"), RPO, "rpo")
    iam = body.get("iamConfiguration")
    if isinstance(iam, dict):
        problems += _enum(iam.get("publicAccessPrevention"), PUBLIC_ACCESS_PREVENTION,
                          "iamConfiguration.publicAccessPrevention")
        if ubla_of(body) and (body.get("acl") or body.get("defaultObjectAcl") or {
                "predefinedAcl", "predefinedDefaultObjectAcl"} & set(query)):
            problems.append(Problem("acl", "uniform-access", "legacy ACLs cannot be set on a bucket "
                                    "with uniform bucket-level access"))
    problems += lifecycle_problems(body.get("lifecycle"))
    return problems


def ubla_of(body: dict[str, Any]) -> bool | None:
    """``iamConfiguration.uniformBucketLevelAccess.enabled`` when the body states it."""
    iam = body.get("iamConfiguration")
    if not isinstance(iam, dict):
        return None
    for key in ("uniformBucketLevelAccess", "bucketPolicyOnly"):
        sub = iam.get(key)
        if isinstance(sub, dict) and isinstance(sub.get("enabled"), bool):
            return bool(sub["enabled"])
    return None


def object_problems(body: Any, query: dict[str, str], *, insert: bool,
                    uniform_access: bool) -> list[Problem]:
    """Semantic checks of Object metadata (an upload's JSON part, or objects.patch)."""
    problems: list[Problem] = []
    meta = body if isinstance(body, dict) else {}
    if insert and not (meta.get("name") or query.get("name")):
        problems.append(Problem("name", "missing-required",
                                "an upload needs the object name (metadata name or ?name=)"))
    problems += _enum(meta.get("storageClass"), STORAGE_CLASSES, "storageClass")
    if uniform_access and (meta.get("acl") or "predefinedAcl" in query):
        problems.append(Problem("acl", "uniform-access", "legacy object ACLs cannot be set in a "
                                "bucket with uniform bucket-level access"))
    return problems


# -- wire formats ------------------------------------------------------------------------------
def boundary_of(content_type: str) -> str | None:
    hit = re.search(r'boundary="?([^";]+)"?', content_type or "")
    return hit.group(1) if hit else None


def split_multipart(raw: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a multipart body, each as (lower-cased headers, payload)."""
    parts = []
    for chunk in raw.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk[2:] if chunk.startswith(b"\r\n") else chunk.lstrip(b"\n")
        head, _, payload = chunk.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = chunk.partition(b"\n\n")
        headers = {}
        for line in head.decode("latin-1").splitlines():
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, payload[:-2] if payload.endswith(b"\r\n") else payload))
    return parts


def upload_metadata(raw: bytes, content_type: str) -> tuple[Any, list[Problem]]:
    """The Object metadata of a multipart/related upload (its first, JSON part)."""
    boundary = boundary_of(content_type)
    if not content_type.startswith("multipart/related") or boundary is None:
        return None, [Problem("", "bad-upload", "uploadType=multipart needs a multipart/related "
                              f"body with a boundary, got Content-Type {content_type!r}")]
    parts = split_multipart(raw, boundary)
    if len(parts) != 2:
        return None, [Problem("", "bad-upload", f"a multipart upload has 2 parts, got {len(parts)}")]
    headers, payload = parts[0]
    if not headers.get("content-type", "").startswith("application/json"):
        return None, [Problem("", "bad-upload", "the first part of a multipart upload is the JSON "
                              "metadata (Content-Type: application/json)")]
    try:
        return json.loads(payload or b"{}"), []
    except ValueError as exc:
        return None, [Problem("", "bad-json", f"upload metadata: {exc}")]


def batch_requests(raw: bytes, content_type: str) -> list[tuple[str, str, bytes]]:
    """The (verb, target, body) of each call inside a ``/batch/storage/v1`` request."""
    boundary = boundary_of(content_type)
    out: list[tuple[str, str, bytes]] = []
    for _, payload in split_multipart(raw, boundary) if boundary else []:
        head, _, body = payload.replace(b"\r\n", b"\n").partition(b"\n\n")
        first = head.decode("latin-1").splitlines()[0].split() if head else []
        if len(first) >= 2:
            out.append((first[0], first[1], body.strip()))
    return out
