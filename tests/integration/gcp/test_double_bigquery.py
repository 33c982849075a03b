"""BigQuery datasets, tables, external tables, views and queries through the official client."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gcp

bigquery = pytest.importorskip("google.cloud.bigquery")
from google.api_core import exceptions  # noqa: E402

P = "funnel-test"


def native(client, table_id: str = "ventas"):
    table = bigquery.Table(f"{P}.refined.{table_id}", schema=[
        bigquery.SchemaField("fecha", "DATE", mode="REQUIRED"),
        bigquery.SchemaField("canal", "STRING"),
        bigquery.SchemaField("monto", "NUMERIC"),
        bigquery.SchemaField("detalle", "RECORD", fields=[bigquery.SchemaField("sku", "STRING")]),
    ])
    table.time_partitioning = bigquery.TimePartitioning(type_=bigquery.TimePartitioningType.DAY,
                                                        field="fecha")
    table.clustering_fields = ["canal"]
    table.labels = {"layer": "refined"}
    return client.create_table(table)


def test_dataset_round_trip(clients, gcp_double):
    bq = clients.bigquery
    ds = bigquery.Dataset(f"{P}.refined")
    ds.location, ds.description, ds.labels = "us-central1", "Refined layer", {"app": "funnel"}
    created = bq.create_dataset(ds)
    assert created.location == "us-central1" and created.created is not None
    with pytest.raises(exceptions.Conflict):
        bq.create_dataset(ds)
    assert bq.create_dataset(ds, exists_ok=True).dataset_id == "refined"
    created.labels = {"app": None, "owner": "data"}  # None deletes a label on PATCH
    created.description = "Refined"
    patched = bq.update_dataset(created, ["labels", "description"])
    assert patched.labels == {"owner": "data"} and patched.description == "Refined"
    assert [d.dataset_id for d in bq.list_datasets()] == ["refined"]
    assert [d.dataset_id for d in bq.list_datasets(filter="labels.owner:data")] == ["refined"]
    with pytest.raises(exceptions.NotFound):
        bq.get_dataset(f"{P}.nope")
    assert gcp_double.count("datasets.patch") == 1


def test_stale_etag_is_refused(clients):
    bq = clients.bigquery
    first = bq.create_dataset(f"{P}.refined")
    first.description = "a"
    bq.update_dataset(first, ["description"])
    first.description = "b"  # still holds the old etag
    with pytest.raises(exceptions.PreconditionFailed):
        bq.update_dataset(first, ["description"])


def test_native_table_round_trip_and_additive_schema_change(clients):
    bq = clients.bigquery
    bq.create_dataset(f"{P}.refined")
    created = native(bq)
    assert created.table_type == "TABLE" and created.num_rows == 0
    got = bq.get_table(f"{P}.refined.ventas")
    assert got.time_partitioning.field == "fecha" and got.clustering_fields == ["canal"]
    assert got.schema[3].fields[0].name == "sku"
    listed = list(bq.list_tables(f"{P}.refined"))
    assert [(t.table_id, t.table_type) for t in listed] == [("ventas", "TABLE")]
    got.schema = [*got.schema, bigquery.SchemaField("nuevo", "INT64")]
    assert len(bq.update_table(got, ["schema"]).schema) == 5
    relaxed = bq.get_table(f"{P}.refined.ventas")
    relaxed.schema = [bigquery.SchemaField("fecha", "DATE", mode="NULLABLE"), *relaxed.schema[1:]]
    bq.update_table(relaxed, ["schema"])


def test_non_additive_changes_need_a_replace(clients):
    bq = clients.bigquery
    bq.create_dataset(f"{P}.refined")
    native(bq)
    changed = bq.get_table(f"{P}.refined.ventas")
    changed.schema = [bigquery.SchemaField("fecha", "STRING"), *changed.schema[1:]]
    with pytest.raises(exceptions.BadRequest, match="changed type"):
        bq.update_table(changed, ["schema"])
    dropped = bq.get_table(f"{P}.refined.ventas")
    dropped.schema = dropped.schema[:2]
    with pytest.raises(exceptions.BadRequest, match="missing"):
        bq.update_table(dropped, ["schema"])
    repart = bq.get_table(f"{P}.refined.ventas")
    repart.time_partitioning = bigquery.TimePartitioning(type_="MONTH", field="fecha")
    with pytest.raises(exceptions.BadRequest, match="partitioning"):
        bq.update_table(repart, ["time_partitioning"])
    bq.delete_table(f"{P}.refined.ventas")
    native(bq)  # the replace: delete, then create with the new definition


def test_external_parquet_table_with_hive_partitioning(clients, gcp_double):
    bq = clients.bigquery
    bq.create_dataset(f"{P}.trusted")
    table = bigquery.Table(f"{P}.trusted.ventas_ext")
    cfg = bigquery.ExternalConfig("PARQUET")
    cfg.source_uris = ["gs://funnel-trusted/ventas/*"]
    hive = bigquery.HivePartitioningOptions()
    hive.mode, hive.source_uri_prefix = "AUTO", "gs://funnel-trusted/ventas/"
    cfg.hive_partitioning = hive
    table.external_data_configuration = cfg
    created = bq.create_table(table)
    assert created.table_type == "EXTERNAL"
    got = bq.get_table(created)
    assert got.external_data_configuration.source_uris == ["gs://funnel-trusted/ventas/*"]
    assert got.external_data_configuration.hive_partitioning.mode == "AUTO"
    # The "waiting for data" rule can be wired to a real bucket listing:
    gcp_double.bigquery.external_source_check = lambda uris: f"{uris[0]} matched no files"
    table2 = bigquery.Table(f"{P}.trusted.otra_ext")
    table2.external_data_configuration = cfg
    with pytest.raises(exceptions.BadRequest, match="matched no files"):
        bq.create_table(table2)


def test_views_must_be_googlesql_and_come_after_what_they_read(clients):
    bq = clients.bigquery
    bq.create_dataset(f"{P}.refined")
    sql = f"SELECT fecha, COUNT(*) AS n FROM `{P}.refined.ventas` GROUP BY fecha"
    early = bigquery.Table(f"{P}.refined.v_diario")
    early.view_query = sql
    early.view_use_legacy_sql = False
    with pytest.raises(exceptions.NotFound, match="ventas"):
        bq.create_table(early)
    native(bq)
    view = bq.create_table(early)
    assert view.table_type == "VIEW" and view.view_use_legacy_sql is False
    legacy = bigquery.Table(f"{P}.refined.v_legacy")
    legacy._properties["view"] = {"query": sql}  # useLegacySql not sent: BigQuery's default, true
    with pytest.raises(exceptions.BadRequest, match="legacy"):
        bq.create_table(legacy)
    cte = bigquery.Table(f"{P}.refined.v_cte")
    cte.view_query = "WITH base AS (SELECT * FROM refined.ventas) SELECT COUNT(*) AS n FROM base"
    cte.view_use_legacy_sql = False
    bq.create_table(cte)
    listed = {t.table_id: t.table_type for t in bq.list_tables(f"{P}.refined")}
    assert listed == {"ventas": "TABLE", "v_diario": "VIEW", "v_cte": "VIEW"}


def test_dataset_delete_needs_delete_contents(clients):
    bq = clients.bigquery
    bq.create_dataset(f"{P}.refined")
    native(bq)
    with pytest.raises(exceptions.BadRequest, match="still in use"):
        bq.delete_dataset(f"{P}.refined")
    bq.delete_dataset(f"{P}.refined", delete_contents=True)
    with pytest.raises(exceptions.NotFound):
        bq.get_table(f"{P}.refined.ventas")


def test_queries_answer_from_configured_rows(clients, gcp_double):
    bq = clients.bigquery
    assert [tuple(r) for r in bq.query("SELECT COUNT(*) FROM refined.ventas").result()] == [(0,)]
    gcp_double.bigquery.add_answer(r"FROM\s+refined\.ventas", rows=[[3, "web"], [5, "app"]],
                                   schema=[("n", "INTEGER"), ("canal", "STRING")])
    rows = list(bq.query_and_wait("SELECT COUNT(*) AS n, canal FROM refined.ventas GROUP BY 2"))
    assert [(r.n, r.canal) for r in rows] == [(3, "web"), (5, "app")]
    job = bq.query("SELECT n, canal FROM refined.ventas")
    assert [r["canal"] for r in job.result()] == ["web", "app"]
    gcp_double.bigquery.add_answer(r"broken", error="Syntax error: Unexpected keyword")
    with pytest.raises(exceptions.BadRequest, match="Syntax error"):
        bq.query_and_wait("SELECT broken")
    assert "SELECT broken" in gcp_double.bigquery.jobs.queries


def test_put_update_replaces_mutable_fields(clients, gcp_double):
    """``tables.update``/``datasets.update`` (PUT) clear what is not sent, unlike PATCH."""
    requests = pytest.importorskip("requests")
    bq = clients.bigquery
    ds = bigquery.Dataset(f"{P}.refined")
    ds.description, ds.labels = "Refined", {"app": "funnel"}
    bq.create_dataset(ds)
    url = f"{gcp_double.url}/bigquery/v2/projects/{P}/datasets/refined"
    resp = requests.put(url, json={"datasetReference": {"projectId": P, "datasetId": "refined"},
                                   "friendlyName": "R"}, timeout=10)
    assert resp.status_code == 200, resp.text
    got = bq.get_dataset(f"{P}.refined")
    assert got.friendly_name == "R" and got.description is None and got.labels == {}
