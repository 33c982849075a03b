"""The JSON Schema of funnel.yaml, generated from the pydantic models (one source of truth)."""

from __future__ import annotations

from typing import Any


def project_json_schema() -> dict[str, Any]:
    from funnelops.spec.models import ProjectSpec

    schema = ProjectSpec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "funnelops project definition (funnel.yaml)"
    return schema
