"""The executor's own rules (tests/gcp_double/executor.py): parameter substitution and step order.

Its behaviour with real programs is proven in test_overlap_on_cluster.py; here, the parts a
wrong answer of which would make those tests prove the wrong thing.
"""

from __future__ import annotations

import pytest

from tests.gcp_double.executor import _ordered, substitute

pytestmark = pytest.mark.gcp


def test_parameter_values_land_at_their_fields_paths_only():
    tpl = {"jobs": [{"stepId": "a", "pysparkJob": {"args": ["--x=1", "--lease=scheduled"]}},
                    {"stepId": "b", "pysparkJob": {"args": ["--lease=scheduled"]}}],
           "parameters": [{"name": "FO_LEASE", "fields": ["jobs['a'].pysparkJob.args[1]",
                                                          "jobs['b'].pysparkJob.args[0]"]},
                          {"name": "UNSENT", "fields": ["jobs['a'].pysparkJob.args[0]"]}]}
    assert substitute(tpl, {"FO_LEASE": "--lease=tok"}) == {"a": ["--x=1", "--lease=tok"], "b": ["--lease=tok"]}
    assert tpl["jobs"][0]["pysparkJob"]["args"][1] == "--lease=scheduled"  # the template is untouched


def test_steps_run_after_their_prerequisites():
    jobs = [{"stepId": "c", "prerequisiteStepIds": ["b"]}, {"stepId": "b", "prerequisiteStepIds": ["a"]},
            {"stepId": "a"}]
    assert [j["stepId"] for j in _ordered(jobs)] == ["a", "b", "c"]
