"""`funnelops spec schema` prints a JSON Schema that editors can use on funnel.yaml."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from funnelops.cli.main import main

FUNNEL = Path(__file__).resolve().parents[3] / "projects" / "funnel" / "funnel.yaml"


def cli_schema(capsys) -> dict:
    assert main(["spec", "schema"]) == 0
    return json.loads(capsys.readouterr().out)


def test_schema_is_valid_json_schema(capsys) -> None:
    schema = cli_schema(capsys)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_shipped_project_validates_against_the_schema(capsys) -> None:
    schema = cli_schema(capsys)
    data = yaml.safe_load(FUNNEL.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)


def test_schema_rejects_what_the_loader_rejects(capsys) -> None:
    validator = jsonschema.Draft202012Validator(cli_schema(capsys))
    good = {"project": {"id": "demo-project"}, "buckets": [{"name": "demo-raw"}]}
    assert not list(validator.iter_errors(good))
    typo = {"project": {"id": "demo-project"}, "buckets": [{"name": "demo-raw", "storage_clas": "X"}]}
    assert list(validator.iter_errors(typo)), "unknown fields are refused (additionalProperties: false)"
    bad_name = {"project": {"id": "demo-project"}, "buckets": [{"name": "Demo_Raw"}]}
    assert list(validator.iter_errors(bad_name))
    no_id = {"project": {}}
    assert list(validator.iter_errors(no_id))
    # the inline schema is spelled `schema` (the alias), not the python name
    table = {"project": {"id": "demo-project"},
             "tables": [{"dataset": "ds", "name": "t1", "schema": [{"name": "a", "type": "DATE"}]}]}
    assert not list(validator.iter_errors(table))
