"""`data load` on gcp: the split files are uploaded to the project's raw bucket (fake-gcs), and a
second load of other data is refused without `replace`."""

from __future__ import annotations

from pathlib import Path

import pytest

from funnelops.errors import UsageError
from tests.integration.gcp.test_backend_buckets import apply_iac, gcs_env, make_project, open_gcp  # noqa: F401

pytestmark = pytest.mark.gcp

pytest.importorskip("google.cloud.storage")

FLOW = '''
from funnelops.flows import dq
from funnelops.flows.engine import F

FILES = "crm/{yyyymm}/deals.csv"
COLUMNS = ("deal_id", "won_date")
DATE_COLUMN = "won_date"
TARGET = "crm_deals"
PARTITION = "event_date"
OUTPUT = ("deal_id", "event_date")


def transform(raw):
    typed = raw.select(dq.text("deal_id").alias("deal_id"), F.to_date(F.col("won_date")).alias("event_date"),
                       *dq.lineage(COLUMNS))
    return dq.finish(typed.withColumn("dq_rule", F.lit(None).cast("string")), OUTPUT)
'''


def test_data_load_uploads_monthly_files_to_the_raw_bucket(tmp_path: Path, gcs_env, fake_gcs) -> None:  # noqa: F811
    from funnelops.lifecycle.data_load import load_data

    path = make_project(tmp_path)
    (path.parent / "flows" / "trusted" / "crm_deals.py").write_text(FLOW, encoding="utf-8")
    loaded, backend = open_gcp(path, tmp_path)
    try:
        apply_iac(loaded, backend)
        src = tmp_path / "deals.csv"
        src.write_text("deal_id,won_date\n1,2024-02-29\n2,2024-03-01\n3,2024-03-31 23:59:59\n", encoding="utf-8")
        report = load_data(loaded, backend, "crm_deals", [src])
        raw = loaded.spec.bucket_for("raw").name
        assert [(t.name, t.rows, t.state) for t in report.targets] == [
            ("crm/202402/deals.csv", 1, "new"), ("crm/202403/deals.csv", 2, "new")]
        blob = fake_gcs.client.bucket(raw).blob("crm/202403/deals.csv")
        assert blob.download_as_bytes() == b"deal_id,won_date\n2,2024-03-01\n3,2024-03-31 23:59:59\n"
        src.write_text("deal_id,won_date\n9,2024-03-02\n", encoding="utf-8")
        with pytest.raises(UsageError, match="already hold other data: crm/202403/deals.csv"):
            load_data(loaded, backend, "crm_deals", [src])
        assert load_data(loaded, backend, "crm_deals", [src], replace=True).targets[0].state == "replaced"
        fresh = fake_gcs.client.bucket(raw).blob("crm/202403/deals.csv")  # the old one pins its generation
        assert fresh.download_as_bytes() == b"deal_id,won_date\n9,2024-03-02\n"
    finally:
        backend.close()
