"""docs/project-reference.md is the JSON Schema rendered, and every field is described there."""

from __future__ import annotations

from pathlib import Path

from funnelops.cli.main import main
from funnelops.spec.reference import reference_markdown, type_text, undescribed_fields
from funnelops.spec.schema import project_json_schema

REFERENCE = Path(__file__).resolve().parents[3] / "docs" / "project-reference.md"


def test_every_field_has_a_description_and_an_example() -> None:
    schema = project_json_schema()
    assert undescribed_fields(schema) == []
    models = {"ProjectSpec": schema, **schema["$defs"]}
    no_example = [f"{m}.{f}" for m, model in models.items() for f, p in model.get("properties", {}).items()
                  if not p.get("examples")]
    assert no_example == []


def test_committed_reference_is_up_to_date() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == reference_markdown(), (
        "docs/project-reference.md is stale: run `funnelops spec reference > docs/project-reference.md`")


def test_reference_command_prints_the_page(capsys) -> None:
    assert main(["spec", "reference"]) == 0
    out = capsys.readouterr().out
    assert out == reference_markdown()
    for section in ("## Top level", "## Project", "## Bucket", "## Workflow", "## Scheduler", "## Placement"):
        assert section in out


def test_every_model_has_a_section_with_all_its_fields() -> None:
    schema = project_json_schema()
    page = reference_markdown(schema)
    for name, model in schema["$defs"].items():
        assert f"## {name}\n" in page
        body = page.split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
        for field in model.get("properties", {}):
            assert f"| `{field}` |" in body, f"{name}.{field} missing from its section"


def test_undescribed_fields_are_found() -> None:
    schema = {"properties": {"a": {"type": "string", "description": "x"}, "b": {"type": "string"}},
              "$defs": {"M": {"properties": {"c": {"type": "integer"}}}}}
    assert undescribed_fields(schema) == ["ProjectSpec.b", "M.c"]


def test_type_text_reads_like_prose() -> None:
    assert type_text({"anyOf": [{"$ref": "#/$defs/Placement"}, {"type": "null"}]}) == "[Placement](#placement) or null"
    assert type_text({"type": "array", "items": {"type": "string"}}) == "list of string"
    assert type_text({"enum": ["DAY", "MONTH"]}) == '`"DAY"` | `"MONTH"`'
    assert type_text({"type": "integer", "minimum": 0, "maximum": 5}) == "integer (minimum 0, maximum 5)"
