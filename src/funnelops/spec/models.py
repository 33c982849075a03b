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
    """A Dataproc template parameter the user declares (funnelops declares FO_EXECUTION_TYPE and
    FO_LEASE itself). Dataproc needs a value for every declared parameter on every instantiation:
    `value` is what funnelops sends (CLI runs and the Cloud Scheduler job's body); without it, the
    value the template holds at the parameter's first field."""

    name: Annotated[str, Field(pattern=PARAM_NAME)]
    fields: Annotated[list[str], Field(min_length=1)]
    description: Annotated[str, Field(max_length=1024)] = ""
    regexes: list[str] = Field(default=[], description="validation.regex.regexes: RE2, each matching the whole value")
    value: Annotated[str, Field(max_length=1000)] | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v[0].isdigit():
            raise ValueError("a parameter name must not start with a digit")
        if v.startswith("FO_"):
            raise ValueError("names starting with FO_ are funnelops' own parameters")
        return v


SCOPE_CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
NETWORK_TAG = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"


class Placement(Strict):
    """The managed cluster each run creates. Dataproc's limits on these values are checked in
    `spec/validate.py` (check_dataproc), where the message can say which limit."""

    cluster_name: Annotated[str, Field(pattern=r"^[a-z]([a-z0-9-]*[a-z0-9])?$")] = "funnel-cluster"
    master_machine_type: str = "n2-standard-4"
    worker_machine_type: str = "n2-standard-4"
    workers: Annotated[int, Field(ge=0, le=1000)] = 2
    image_version: str = "2.2-debian12"
    image_uri: str | None = Field(default=None, description="a custom image (URI or family) instead of image_version")
    bootstrap: Literal["wheelhouse", "none"] = Field(
        default="wheelhouse", description="wheelhouse: an initialization action installs the flows' dependencies; "
                                          "none: the image already has them (a custom image)")
    service_account: Annotated[str, Field(pattern=EMAIL)] | None = Field(
        default=None, description="the cluster VMs' identity; default: project.service_account")
    scopes: list[str] = [SCOPE_CLOUD_PLATFORM]
    subnetwork: str | None = Field(default=None, description="a name, or a full/Shared VPC subnetwork URI")
    internal_ip_only: bool = True
    tags: list[Annotated[str, Field(pattern=NETWORK_TAG)]] = []
    zone: Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]-[a-z]$")] | None = None
    properties: dict[str, str] = Field(default={}, description="softwareConfig.properties (prefix:key)")

    @model_validator(mode="after")
    def _one_image(self) -> Placement:
        if self.image_uri and "image_version" in self.model_fields_set:
            raise ValueError("give image_version (a Dataproc image) or image_uri (a custom image), not both")
        return self


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


class Quality(Strict):
    """How much bad data a run tolerates before it fails instead of publishing."""

    max_quarantine_share: Annotated[float, Field(ge=0, le=1, strict=True)] = Field(
        default=0.5,
        description="a trusted flow that quarantines more than this share of the rows it read (0 to 1) fails "
                    "the run before writing anything, naming its top rules and a sample of rows; a flow may "
                    "override it with a module constant MAX_QUARANTINE_SHARE; 1 never fails",
        examples=[0.5, 0.05])


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
    quality: Quality = Field(default=Quality(), description="data-quality limits every trusted flow is held to")

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
