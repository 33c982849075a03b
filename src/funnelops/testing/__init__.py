"""Test support that ships with funnelops.

Nothing here is imported by the tool itself. It exists so that the gcp backend can be proven
without Google: :mod:`funnelops.testing.gcp_double` is an HTTP contract double for BigQuery,
Dataproc and Cloud Scheduler that holds every request to Google's published discovery schemas.
"""
