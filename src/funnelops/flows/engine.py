"""The PySpark DataFrame API that flow code imports, whichever engine runs it.

Trusted flows are written once with the PySpark API and run on two engines: SQLFrame over an
in-memory DuckDB locally (no JVM) and real Spark on Dataproc or in the parity tests. Flow code
writes ``from funnelops.flows.engine import F, Window`` and gets the ``functions`` module and
``Window`` class of the engine that is active when the flow module is loaded; the registry loads
flow modules fresh after :func:`activate`, so one process can run the same code on both engines.

The sessions live here too, with the engine-specific glue the runtime needs (staging inputs,
turning a DataFrame into SQL, writing). Flow code never touches that glue.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

ENGINES = ("duckdb", "spark")
_active = os.environ.get("FUNNELOPS_ENGINE", "duckdb")


def activate(name: str) -> None:
    """Select the engine whose API later flow-module loads receive."""
    global _active
    if name not in ENGINES:
        raise ValueError(f"unknown engine '{name}' (known: {', '.join(ENGINES)})")
    _active = name


def active() -> str:
    return _active


def api(name: str | None = None) -> dict[str, Any]:
    """`F`, `Window` and `T` (types) of an engine."""
    name = name or _active
    if name == "duckdb":
        import sqlframe.duckdb.functions as duck_functions
        import sqlframe.duckdb.types as duck_types
        from sqlframe.duckdb import Window as DuckWindow

        return {"F": duck_functions, "Window": DuckWindow, "T": duck_types}
    import pyspark.sql.functions as spark_functions
    import pyspark.sql.types as spark_types
    from pyspark.sql import Window as SparkWindow

    return {"F": spark_functions, "Window": SparkWindow, "T": spark_types}


def __getattr__(name: str) -> ModuleType | type:
    # PEP 562: `from funnelops.flows.engine import F` resolves against the active engine.
    if name in ("F", "Window", "T"):
        return api()[name]
    raise AttributeError(name)


def tz_literal(tz: str) -> str:
    """`tz` as a SQL string body, after checking it is a real zone name (it is spliced into SET)."""
    from zoneinfo import ZoneInfo

    ZoneInfo(tz)  # raises on anything that is not a real zone name
    return tz.replace("'", "")


class DuckEngine:
    """SQLFrame on a private in-memory DuckDB connection (never the warehouse file)."""

    name = "duckdb"

    def __init__(self, time_zone: str | None = None, *, threads: int | None = None,
                 memory_limit: str | None = None, temp_dir: str | None = None) -> None:
        import duckdb
        from sqlframe.base.session import _BaseSession
        from sqlframe.duckdb import DuckDBSession

        self.con = duckdb.connect(":memory:")
        if time_zone:
            self.con.execute(f"SET TimeZone = '{tz_literal(time_zone)}'")
        threads = threads or int(os.environ.get("FUNNELOPS_DUCKDB_THREADS", "0") or 0)
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        memory_limit = memory_limit or os.environ.get("FUNNELOPS_DUCKDB_MEMORY")
        if memory_limit:
            self.con.execute("SET memory_limit = ?", [memory_limit])
        if temp_dir:
            self.con.execute("SET temp_directory = ?", [temp_dir])
        self.con.execute("SET preserve_insertion_order = true")
        # SQLFrame keeps one session per process and ignores a new connection while one is
        # open; drop the previous one so every engine gets its own connection.
        _BaseSession._instance = None
        self.session = DuckDBSession(conn=self.con)

    def table(self, name: str):
        """A DataFrame over a (non-temporary: SQLFrame's catalog only sees those) table or view."""
        return self.session.table(name)

    def to_sql(self, df) -> str:
        return df.sql(dialect="duckdb", pretty=False)

    def materialize(self, df, name: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TABLE {name} AS {self.to_sql(df)}")

    def close(self) -> None:
        try:
            self.session.stop()
        except Exception:  # the connection may already be closed
            pass


class SparkEngine:
    """Real Spark (local mode here, a Dataproc cluster on gcp). Imported lazily: the JVM is slow."""

    name = "spark"

    def __init__(self, time_zone: str | None = None, *, master: str | None = "local[2]",
                 app: str = "funnelops-flows") -> None:
        """`master=None` keeps the master spark-submit gave (a Dataproc cluster): only a local
        session gets the small-machine settings (no UI, few shuffle partitions)."""
        from pyspark.sql import SparkSession

        import sys

        builder = SparkSession.builder.appName(app)
        if master:
            # Local Python workers run this interpreter, which can import funnelops (the runtime's
            # RDD staging ships functions to them); on a cluster the launcher's zip provides it.
            # PySpark 3.5 takes the workers' interpreter from PYSPARK_PYTHON (else `python3` on PATH)
            # when the context is made from Python: the config below alone is not read then.
            import os

            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            builder = (builder.master(master).config("spark.ui.enabled", "false")
                       .config("spark.sql.shuffle.partitions", "4").config("spark.ui.showConsoleProgress", "false")
                       .config("spark.pyspark.python", sys.executable)
                       .config("spark.pyspark.driver.python", sys.executable))
        builder = (builder
                   # Timestamps as delivered (local wall time, no zone), like DuckDB's TIMESTAMP.
                   .config("spark.sql.timestampType", "TIMESTAMP_NTZ")
                   .config("spark.sql.session.timeZone", time_zone or "UTC"))
        self.session = builder.getOrCreate()
        self.session.sparkContext.setLogLevel("ERROR")

    def read_parquet(self, path: str):
        return self.session.read.parquet(path)

    def write_partitioned(self, df, out_dir: str, partition_col: str) -> None:
        df.write.mode("overwrite").partitionBy(partition_col).parquet(out_dir)

    def close(self) -> None:
        self.session.stop()
