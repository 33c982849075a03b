"""resolve_scheduler: seed names, ids and ASCII spellings all find the same scheduler."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnelops.errors import EXIT_USAGE, UsageError
from funnelops.lifecycle.jobs import resolve_scheduler
from funnelops.spec.loader import load_project

PROJECT = Path(__file__).resolve().parents[3] / "projects" / "funnel" / "funnel.yaml"


@pytest.fixture(scope="module")
def loaded():
    return load_project(PROJECT)


@pytest.mark.parametrize("word,sid", [
    ("Día", "dia"), ("dia", "dia"), ("DIA", "dia"), ("Dia", "dia"), ("DÍA", "dia"), (" día ", "dia"),
    ("Mes", "mes"), ("mes", "mes"), ("MES", "mes"),
    ("Año", "anio"), ("anio", "anio"), ("ano", "anio"), ("AÑO", "anio"), ("Anio", "anio"),
    ("Duplicado mes", "duplicado-mes"), ("duplicado-mes", "duplicado-mes"), ("duplicado_mes", "duplicado-mes"),
    ("DUPLICADO MES", "duplicado-mes"), ("Duplicado  mes", "duplicado-mes"),
])
def test_aliases_resolve(loaded, word, sid):
    s = resolve_scheduler(loaded, word)
    assert s.id == sid
    assert s.workflow == f"funnel-{sid}"


@pytest.mark.parametrize("word,name,sid", [("dias", "Día", "dia"), ("Mess", "Mes", "mes"),
                                           ("duplicado", "Duplicado mes", "duplicado-mes")])
def test_unknown_scheduler_is_a_usage_error_with_did_you_mean(loaded, word, name, sid):
    with pytest.raises(UsageError) as ei:
        resolve_scheduler(loaded, word)
    err = ei.value
    assert err.exit_code == EXIT_USAGE
    assert f"unknown scheduler '{word}'" in err.message
    assert err.hint and "did you mean" in err.hint
    assert f"'{name}'" in err.hint or f"'{sid}'" in err.hint


def test_nothing_alike_lists_the_known_schedulers(loaded):
    with pytest.raises(UsageError) as ei:
        resolve_scheduler(loaded, "zzzzzz")
    hint = ei.value.hint or ""
    for name in ("Día", "Mes", "Año", "Duplicado mes"):
        assert name in hint
