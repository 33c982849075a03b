"""The engines the layer runners drive: each implements a narrow I/O interface of
:mod:`funnelops.flows.engines.base` (DuckDB/SQLFrame and Spark for trusted, DuckDB and BigQuery
for refined). Engines never pick their clients or paths: a backend's factory injects them."""
