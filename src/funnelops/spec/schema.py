"""The JSON Schema of funnel.yaml, generated from the pydantic models (one source of truth)."""

from __future__ import annotations

from typing import Any


def project_json_schema(allow_references: bool = True) -> dict[str, Any]:
    """The editors' schema; `allow_references=False` keeps the literal patterns only (the field
    reference documents those: a `${VAR}` is allowed in every string, said once there)."""
    from funnelops.spec.models import ProjectSpec

    schema = ProjectSpec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "funnelops project definition (funnel.yaml)"
    if allow_references:
        _allow_references(schema)
    return schema


# `${VAR}` / `${VAR:-default}` anywhere in the value (spec/interpolate.py resolves it before validation)
REFERENCE_PATTERN = r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"


def _allow_references(node: Any) -> None:
    """Let a patterned string field hold a `${VAR}` reference: the loader interpolates before it
    validates, so an editor must not underline `id: "${GCP_PROJECT_ID:-acme}"` that funnelops
    accepts. The pattern still checks literal values."""
    if isinstance(node, list):
        for item in node:
            _allow_references(item)
        return
    if not isinstance(node, dict):
        return
    for value in node.values():
        _allow_references(value)
    if node.get("type") == "string" and "pattern" in node:
        literal = {"type": "string", "pattern": node.pop("pattern")}
        node.pop("type")
        node["anyOf"] = [literal, {"type": "string", "pattern": REFERENCE_PATTERN}]
