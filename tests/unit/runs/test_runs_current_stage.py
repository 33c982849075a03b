"""`plan` without --stage plans the stage the lifecycle last completed."""

from funnelops.lifecycle.order import current_stage
from funnelops.backends.local.ledger import LocalLedger


def test_current_stage_follows_the_ledger(tmp_path):
    ledger = LocalLedger(tmp_path)
    assert current_stage(ledger) == "iac"  # a new project
    ledger.record_stage("iac", "h1", "me")
    assert current_stage(ledger) == "iac"
    ledger.record_stage("initial_data", "h1", "me")
    assert current_stage(ledger) == "initial_data"
    ledger.record_stage("workflow", "h1", "me")
    assert current_stage(ledger) == "workflow"
    ledger.reset_stages("me")  # destroy
    assert current_stage(ledger) == "iac"
