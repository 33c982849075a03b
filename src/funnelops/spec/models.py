"""Pydantic models of the project definition (`funnel.yaml`).

Every model forbids unknown fields, so a typo is an error that names its line rather than a
silently ignored setting. Identifiers that later reach SQL or a path are constrained here by
pattern; cross-references (a scheduler's workflow, a view's tables...) are checked in
:mod:`funnelops.spec.validate`, where the whole project is known.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Names that reach SQL, paths or Google resource names. Kept deliberately narrow.
IDENT = r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$"
BUCKET = r"^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$"
# Dataproc: step ids 3-50 chars of letters, digits, _ and -, not starting/ending with _ or -.
STEP_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{1,48}[A-Za-z0-9]$"
TEMPLATE_ID = STEP_ID
PARAM_NAME = r"^[A-Z0-9_]{1,40}$"
SCHEDULER_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"
LABEL_KEY = r"^[a-z][a-z0-9_-]{0,62}$"
LABEL_VALUE = r"^[a-z0-9_-]{0,63}$"
PREFIX = r"^([A-Za-z0-9_=.-]+/)*[A-Za-z0-9_=.-]*$"
ARG = r"^--[A-Za-z0-9_][A-Za-z0-9_.-]*(=.*)?$"
DURATION = r"^[0-9]+s$"

Ident = Annotated[str, Field(pattern=IDENT)]
Labels = dict[Annotated[str, Field(pattern=LABEL_KEY)], Annotated[str, Field(pattern=LABEL_VALUE)]]

BQ_TYPES = ("STRING", "BYTES", "INTEGER", "INT64", "FLOAT", "FLOAT64", "NUMERIC", "BIGNUMERIC",
            "BOOLEAN", "BOOL", "TIMESTAMP", "DATE", "TIME", "DATETIME", "JSON", "RECORD", "STRUCT")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Project(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
    region: Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]$")] = "us-east1"
    location: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] = "US"
    time_zone: str = "America/Bogota"
    environment: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")] = "dev"
    backend: Literal["local", "gcp"] = "local"
    service_account: str | None = None
    artifacts_bucket: str | None = Field(
        default=None, description="bucket holding the packaged flows, the ledger and the leases on gcp")


class Stages(Strict):
    """The dynamic argument appended to every workflow template at each lifecycle stage."""

    iac: list[Annotated[str, Field(pattern=ARG)]] = ["--refined_flows=false"]
    initial_data: list[Annotated[str, Field(pattern=ARG)]] = ["--trusted_flows=false"]
    workflow: list[Annotated[str, Field(pattern=ARG)]] = []


class LifecycleRule(Strict):
    action: Literal["Delete", "SetStorageClass"]
    age_days: Annotated[int, Field(ge=0, le=36500)]
    storage_class: Literal["NEARLINE", "COLDLINE", "ARCHIVE"] | None = None

    @model_validator(mode="after")
    def _class_for_set(self) -> LifecycleRule:
        if self.action == "SetStorageClass" and self.storage_class is None:
            raise ValueError("action SetStorageClass needs storage_class")
        return self


class Bucket(Strict):
    name: Annotated[str, Field(pattern=BUCKET)]
    role: Literal["raw", "trusted", "refined", "artifacts", "other"] = "other"
    location: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] | None = Field(
        default=None, description="GCS location; default: project.location")
    storage_class: Literal["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"] = "STANDARD"
    labels: Labels = {}
    lifecycle_rules: list[LifecycleRule] = []
    deletion_protection: bool = False
    # Safe by default: access only through IAM (no per-object ACLs), never public. Versioning is
    # off by default because every run rewrites partitions and the ledger; soft delete (Google's
    # default on new buckets) already keeps deleted and overwritten objects for 7 days.
    uniform_bucket_level_access: bool = Field(
        default=True, description="iamConfiguration.uniformBucketLevelAccess.enabled")
    public_access_prevention: Literal["enforced", "inherited"] = Field(
        default="enforced", description="iamConfiguration.publicAccessPrevention")
    versioning: bool = Field(default=False, description="versioning.enabled (keeps every overwritten "
                             "object; add a Delete rule on noncurrent versions to bound the cost)")


class Dataset(Strict):
    id: Ident
    location: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] | None = None
    description: str = ""
    labels: Labels = {}


class ColumnSchema(Strict):
    """One field in BigQuery's JSON schema format."""

    name: Ident
    type: str
    mode: Literal["NULLABLE", "REQUIRED", "REPEATED"] = "NULLABLE"
    description: str = ""

    @field_validator("type")
    @classmethod
    def _known_type(cls, v: str) -> str:
        up = v.upper()
        if up not in BQ_TYPES:
            raise ValueError(f"unknown BigQuery type '{v}' (known: {', '.join(BQ_TYPES)})")
        if up in ("RECORD", "STRUCT"):
            raise ValueError("nested RECORD columns are not supported; flatten the column")
        return up


class Partitioning(Strict):
    field: Ident
    type: Literal["DAY", "MONTH", "YEAR", "HOUR"] = "DAY"


class Table(Strict):
    dataset: Ident
    name: Ident
    description: str = ""
    schema_: list[ColumnSchema] | None = Field(default=None, alias="schema")
    schema_file: str | None = None
    partitioning: Partitioning | None = None
    clustering: Annotated[list[Ident], Field(max_length=4)] = []
    labels: Labels = {}
    deletion_protection: bool = False

    @model_validator(mode="after")
    def _one_schema(self) -> Table:
        if (self.schema_ is None) == (self.schema_file is None):
            raise ValueError("give exactly one of `schema` (inline fields) or `schema_file`")
        return self

    @property
    def address(self) -> str:
        return f"{self.dataset}.{self.name}"


class ExternalTable(Strict):
    dataset: Ident
    name: Ident
    format: Literal["PARQUET"] = "PARQUET"
    bucket: Annotated[str, Field(pattern=BUCKET)]
    prefix: Annotated[str, Field(pattern=PREFIX)]
    hive_partitioning: bool = True
    description: str = ""
    labels: Labels = {}

    @field_validator("prefix")
    @classmethod
    def _no_dotdot(cls, v: str) -> str:
        if ".." in v.split("/"):
            raise ValueError("prefix may not contain '..'")
        return v

    @property
    def address(self) -> str:
        return f"{self.dataset}.{self.name}"


class View(Strict):
    dataset: Ident
    name: Ident
    query: str | None = None
    query_file: str | None = None
    description: str = ""
    labels: Labels = {}

    @model_validator(mode="after")
    def _one_query(self) -> View:
        if (self.query is None) == (self.query_file is None):
            raise ValueError("give exactly one of `query` (inline SQL) or `query_file`")
        return self

    @property
    def address(self) -> str:
        return f"{self.dataset}.{self.name}"


class WorkflowStep(Strict):
    """One step of a workflow template (a Dataproc OrderedJob running a PySpark program).

    The YAML key stays `jobs:` (Dataproc's name, and the file format is a contract); the class is
    named for what it is, apart from the lifecycle's jobs ("GCP create infra", `lifecycle/jobs.py`)."""

    step_id: Annotated[str, Field(pattern=STEP_ID)]
    main: str = "funnelops.flows"
    args: list[Annotated[str, Field(pattern=ARG)]] = []
    prerequisites: list[str] = []
    properties: dict[str, str] = {}


class Parameter(Strict):
    name: Annotated[str, Field(pattern=PARAM_NAME)]
    fields: list[str]
    description: str = ""


class Placement(Strict):
    cluster_name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,49}[a-z0-9]$")] = "funnel-cluster"
    master_machine_type: str = "n2-standard-4"
    worker_machine_type: str = "n2-standard-4"
    workers: Annotated[int, Field(ge=0, le=1000)] = 2
    image_version: str = "2.2-debian12"


class Workflow(Strict):
    name: Annotated[str, Field(pattern=TEMPLATE_ID)]
    granularity: Literal["DAY", "MONTH", "YEAR"]
    initial_load: bool = False
    args: list[Annotated[str, Field(pattern=ARG)]] = []
    jobs: Annotated[list[WorkflowStep], Field(min_length=1)]
    parameters: list[Parameter] = []
    placement: Placement = Placement()
    dag_timeout: Annotated[str, Field(pattern=DURATION)] = "3600s"
    labels: Labels = {}


class RetryConfig(Strict):
    retry_count: Annotated[int, Field(ge=0, le=5)] = 0
    min_backoff_s: Annotated[int, Field(ge=0)] = 5
    max_backoff_s: Annotated[int, Field(ge=0)] = 3600
    max_doublings: Annotated[int, Field(ge=0)] = 5


class Scheduler(Strict):
    # travels as "[name] description" (Cloud Scheduler has no display name): no brackets, one line
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\[\]\r\n]+$")]
    id: Annotated[str, Field(pattern=SCHEDULER_ID)]
    cron: str
    time_zone: str | None = None
    workflow: str
    description: str = ""
    retry: RetryConfig = RetryConfig()
    attempt_deadline: Annotated[str, Field(pattern=DURATION)] = "1800s"
    paused: bool = False


class SampleData(Strict):
    """Where the project's sample raw data comes from (`funnelops data generate`, `funnelops demo`)."""

    generator: str = Field(description="a .py file inside the project folder, relative to the project file, "
                                       "that writes sample raw data (contract: funnelops.lifecycle.sample_data)")


class ProjectSpec(Strict):
    """The whole project definition."""

    project: Project
    variables: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str | int | float | bool] = {}
    stages: Stages = Stages()
    buckets: list[Bucket] = []
    datasets: list[Dataset] = []
    tables: list[Table] = []
    external_tables: list[ExternalTable] = []
    views: list[View] = []
    workflows: list[Workflow] = []
    schedulers: list[Scheduler] = []
    data: SampleData | None = None

    def bucket_for(self, role: str) -> Bucket | None:
        return next((b for b in self.buckets if b.role == role), None)

    def workflow(self, name: str) -> Workflow | None:
        return next((w for w in self.workflows if w.name == name), None)


def variable_args(variables: Mapping[str, object]) -> list[str]:
    """The variable group as `--key=value` arguments, in the order the project gives them."""
    out = []
    for key, value in variables.items():
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out.append(f"--{key}={text}")
    return out


_ARG_KEY = re.compile(r"^--([^=]+)")


def arg_key(arg: str) -> str:
    m = _ARG_KEY.match(arg)
    return m.group(1) if m else arg
