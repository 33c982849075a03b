"""Field errors and cross-reference errors are reported in the same run, with their own lines."""

from __future__ import annotations

import pytest

from funnelops.errors import ProjectError
from funnelops.spec.loader import load_project

TEXT = """project:
  id: demo-project
  regoin: us-east1
buckets:
  - name: Bad_Bucket
workflows:
  - name: wf-day
    granularity: WEEK
    jobs:
      - step_id: step-one
  - name: wf-month
    granularity: MONTH
    jobs:
      - step_id: step-one
schedulers:
  - {name: Día, id: dia, cron: "0 6 * *", workflow: wf-dai}
  - {name: Mes, id: mes, cron: "0 7 1 * *", workflow: wf-day}
"""


def test_field_and_reference_problems_come_together(tmp_path):
    path = tmp_path / "funnel.yaml"
    path.write_text(TEXT, encoding="utf-8")
    with pytest.raises(ProjectError) as info:
        load_project(path)
    found = {(p.line, p.field) for p in info.value.problems}
    assert found == {
        (3, "project.regoin"),                 # unknown field
        (5, "buckets[Bad_Bucket].name"),       # bad bucket name
        (8, "workflows[wf-day].granularity"),  # not DAY/MONTH/YEAR
        (16, "schedulers[Día].cron"),          # 4 fields
        (16, "schedulers[Día].workflow"),      # typo: wf-dai
    }
    # 'Mes' points at wf-day, which was set aside for its own error: not reported as unknown
    assert not any(p.field.startswith("schedulers[Mes]") for p in info.value.problems)
    typo = next(p for p in info.value.problems if p.field == "schedulers[Día].workflow")
    assert "did you mean 'wf-day'" in (typo.hint or "")
