"""Pydantic models of the project definition (`funnel.yaml`).

Every model forbids unknown fields, so a typo is an error that names its line rather than a
silently ignored setting. Identifiers that later reach SQL or a path are constrained here by
pattern; cross-references (a scheduler's workflow, a view's tables...) are checked in
:mod:`funnelops.spec.validate`, where the whole project is known.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

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
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")] = Field(
        description="The Google Cloud project id (6-30 chars). On the local backend only a name.",
        examples=["acme-crm-prod"])
    region: Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]$")] = Field(
        default="us-east1", description="gcp: the region of the Dataproc workflow templates and Cloud Scheduler jobs.",
        examples=["europe-west1"])
    location: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] = Field(
        default="US", description="Default location of buckets and datasets (a multi-region or a region).",
        examples=["EU", "us-east1"])
    time_zone: str = Field(
        default="America/Bogota", description="IANA time zone: what 'today'/'this month' means for a run's "
                                               "period, and the default time zone of the schedulers' crons.",
        examples=["UTC", "Europe/Madrid"])
    environment: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")] = Field(
        default="dev", description="A label for this deployment (dev, prod...); informational.",
        examples=["prod"])
    backend: Literal["local", "gcp"] = Field(
        default="local", description="Where the project runs unless --backend says otherwise: local (folders, "
                                     "DuckDB, a local runner) or gcp (GCS, BigQuery, Dataproc, Cloud Scheduler).",
        examples=["gcp"])
    service_account: str | None = Field(
        default=None, description="gcp: the service account e-mail the workflows and schedulers run as.",
        examples=["workflows@acme-crm-prod.iam.gserviceaccount.com"])
    artifacts_bucket: str | None = Field(
        default=None, description="bucket holding the packaged flows, the ledger and the leases on gcp",
        examples=["acme-crm-artifacts"])


class Stages(Strict):
    """The dynamic argument appended to every workflow template at each lifecycle stage."""

    iac: list[Annotated[str, Field(pattern=ARG)]] = Field(
        default=["--refined_flows=false"], description="Arguments appended to every template by the IaC stage "
                                                      "(the first initial load then builds the trusted layer only).",
        examples=[["--refined_flows=false"]])
    initial_data: list[Annotated[str, Field(pattern=ARG)]] = Field(
        default=["--trusted_flows=false"], description="Arguments appended by the 'Initial data' stage (its re-run "
                                                       "builds the refined layer only).",
        examples=[["--trusted_flows=false"]])
    workflow: list[Annotated[str, Field(pattern=ARG)]] = Field(
        default=[], description="Arguments appended by the Workflow stage (the scheduled runs).",
        examples=[["--refined_flows=funnel"]])


class LifecycleRule(Strict):
    action: Literal["Delete", "SetStorageClass"] = Field(
        description="What happens to objects older than age_days.", examples=["SetStorageClass"])
    age_days: Annotated[int, Field(ge=0, le=36500)] = Field(
        description="Age in days (since creation) at which the rule applies.", examples=[90])
    storage_class: Literal["NEARLINE", "COLDLINE", "ARCHIVE"] | None = Field(
        default=None, description="The class objects move to (required by SetStorageClass).", examples=["NEARLINE"])

    @model_validator(mode="after")
    def _class_for_set(self) -> LifecycleRule:
        if self.action == "SetStorageClass" and self.storage_class is None:
            raise ValueError("action SetStorageClass needs storage_class")
        return self


class Bucket(Strict):
    name: Annotated[str, Field(pattern=BUCKET)] = Field(
        description="The bucket name (global on Google Cloud; a folder under <home>/buckets/ locally).",
        examples=["acme-crm-raw"])
    role: Literal["raw", "trusted", "refined", "artifacts", "other"] = Field(
        default="other", description="What the flows use it for: raw (files as delivered, read by trusted flows), "
                                     "trusted (Parquet written by them), refined, artifacts (funnelops' own objects "
                                     "on gcp), other.",
        examples=["raw"])
    location: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] | None = Field(
        default=None, description="GCS location; default: project.location", examples=["US"])
    storage_class: Literal["STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE"] = Field(
        default="STANDARD", description="The default storage class of new objects.", examples=["NEARLINE"])
    labels: Labels = Field(default={}, description="Google Cloud labels (lowercase keys and values).",
                           examples=[{"layer": "raw"}])
    lifecycle_rules: list[LifecycleRule] = Field(
        default=[], description="Object lifecycle rules (age-based delete or storage-class change).",
        examples=[[{"action": "SetStorageClass", "age_days": 90, "storage_class": "NEARLINE"}]])
    deletion_protection: bool = Field(
        default=False, description="When true, destroy and plans never delete it.", examples=[True])
    # Safe by default: access only through IAM (no per-object ACLs), never public. Versioning is
    # off by default because every run rewrites partitions and the ledger; soft delete (Google's
    # default on new buckets) already keeps deleted and overwritten objects for 7 days.
    uniform_bucket_level_access: bool = Field(
        default=True, description="iamConfiguration.uniformBucketLevelAccess.enabled", examples=[True])
    public_access_prevention: Literal["enforced", "inherited"] = Field(
        default="enforced", description="iamConfiguration.publicAccessPrevention", examples=["enforced"])
    versioning: bool = Field(default=False, description="versioning.enabled (keeps every overwritten "
                             "object; add a Delete rule on noncurrent versions to bound the cost)", examples=[False])


class Dataset(Strict):
    id: Ident = Field(description="The dataset id: a BigQuery dataset, a DuckDB schema locally.",
                      examples=["crm_refined"])
    location: Annotated[str, Field(pattern=r"^[A-Za-z0-9-]+$")] | None = Field(
        default=None, description="BigQuery location; default: project.location.", examples=["US"])
    description: str = Field(default="", description="Free text shown in BigQuery.",
                             examples=["Figures per day, month and year."])
    labels: Labels = Field(default={}, description="Google Cloud labels.", examples=[{"layer": "refined"}])


class ColumnSchema(Strict):
    """One field in BigQuery's JSON schema format."""

    name: Ident = Field(description="The column name.", examples=["period_start"])
    type: str = Field(description="A BigQuery type (STRING, INTEGER, NUMERIC, DATE, TIMESTAMP...; no RECORD).",
                      examples=["DATE"])
    mode: Literal["NULLABLE", "REQUIRED", "REPEATED"] = Field(
        default="NULLABLE", description="Whether the column may be NULL (or holds an array).", examples=["REQUIRED"])
    description: str = Field(default="", description="The column's description.",
                             examples=["First day of the period."])

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
    field: Ident = Field(description="The DATE or TIMESTAMP column the table is partitioned by.",
                         examples=["period_start"])
    type: Literal["DAY", "MONTH", "YEAR", "HOUR"] = Field(default="DAY", description="The partition size.",
                                                          examples=["MONTH"])


class Table(Strict):
    dataset: Ident = Field(description="The dataset holding the table (one of datasets).",
                           examples=["crm_refined"])
    name: Ident = Field(description="The table name (what a refined SQL's `-- target:` names).",
                        examples=["leads_per_period"])
    description: str = Field(default="", description="Free text shown in BigQuery.",
                             examples=["New leads per period and source."])
    schema_: list[ColumnSchema] | None = Field(
        default=None, alias="schema", description="The columns, inline (give this or schema_file).",
        examples=[[{"name": "period_start", "type": "DATE", "mode": "REQUIRED"}]])
    schema_file: str | None = Field(
        default=None, description="A BigQuery JSON schema file, relative to the project file (or schema).",
        examples=["schemas/leads_per_period.json"])
    partitioning: Partitioning | None = Field(
        default=None, description="Time partitioning; refined tables usually partition by period_start.",
        examples=[{"field": "period_start", "type": "MONTH"}])
    clustering: Annotated[list[Ident], Field(max_length=4)] = Field(
        default=[], description="Up to 4 clustering columns.", examples=[["source"]])
    labels: Labels = Field(default={}, description="Google Cloud labels.", examples=[{"layer": "refined"}])
    deletion_protection: bool = Field(
        default=False, description="When true, destroy and replacing plans never drop it.", examples=[True])

    @model_validator(mode="after")
    def _one_schema(self) -> Table:
        if (self.schema_ is None) == (self.schema_file is None):
            raise ValueError("give exactly one of `schema` (inline fields) or `schema_file`")
        return self

    @property
    def address(self) -> str:
        return f"{self.dataset}.{self.name}"


class ExternalTable(Strict):
    dataset: Ident = Field(description="The dataset holding the external table (usually the trusted one).",
                           examples=["crm_trusted"])
    name: Ident = Field(description="The table name refined SQL reads (dataset.name).", examples=["leads"])
    format: Literal["PARQUET"] = Field(default="PARQUET", description="The file format (trusted flows write Parquet).",
                                       examples=["PARQUET"])
    bucket: Annotated[str, Field(pattern=BUCKET)] = Field(
        description="The bucket holding the files (the trusted bucket).", examples=["acme-crm-trusted"])
    prefix: Annotated[str, Field(pattern=PREFIX)] = Field(
        description="The folder inside the bucket: a trusted flow's TARGET followed by `/`.", examples=["leads/"])
    hive_partitioning: bool = Field(
        default=True, description="Read `column=value/` folders as columns (the trusted flows' PARTITION).",
        examples=[True])
    description: str = Field(default="", description="Free text shown in BigQuery.", examples=["Leads, typed."])
    labels: Labels = Field(default={}, description="Google Cloud labels.", examples=[{"layer": "trusted"}])

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
    dataset: Ident = Field(description="The dataset holding the view.", examples=["crm_reporting"])
    name: Ident = Field(description="The view name.", examples=["v_leads_monthly"])
    query: str | None = Field(default=None, description="The view's SELECT, inline (give this or query_file).",
                              examples=["SELECT * FROM crm_refined.leads_per_period WHERE granularity = 'MONTH'"])
    query_file: str | None = Field(default=None, description="A .sql file with the SELECT, relative to the "
                                                             "project file (or query).",
                                   examples=["sql/views/v_leads_monthly.sql"])
    description: str = Field(default="", description="Free text shown in BigQuery.", examples=["Leads per month."])
    labels: Labels = Field(default={}, description="Google Cloud labels.", examples=[{"layer": "reporting"}])

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

    step_id: Annotated[str, Field(pattern=STEP_ID)] = Field(
        description="The step's id (3-50 letters, digits, _ and -).", examples=["flows"])
    main: str = Field(default="funnelops.flows",
                      description="What the step runs: a module (funnelops.flows, the trusted+refined flows program) "
                                  "or a .py file inside the project folder.",
                      examples=["funnelops.flows", "steps/notify.py"])
    args: list[Annotated[str, Field(pattern=ARG)]] = Field(
        default=[], description="The step's own --key=value arguments (after the template's).",
        examples=[["--trusted_flows=leads"]])
    prerequisites: list[str] = Field(default=[], description="step_ids that must finish first.",
                                     examples=[["flows"]])
    properties: dict[str, str] = Field(default={}, description="Spark properties of the step (gcp).",
                                       examples=[{"spark.executor.memory": "4g"}])


class Parameter(Strict):
    """A Dataproc template parameter the user declares (funnelops declares FO_EXECUTION_TYPE and
    FO_LEASE itself). Dataproc needs a value for every declared parameter on every instantiation:
    `value` is what funnelops sends (CLI runs and the Cloud Scheduler job's body); without it, the
    value the template holds at the parameter's first field."""

    name: Annotated[str, Field(pattern=PARAM_NAME)] = Field(
        description="The parameter's name (uppercase; FO_ names are funnelops' own).", examples=["REGION_FILTER"])
    fields: Annotated[list[str], Field(min_length=1)] = Field(
        description="Dataproc field paths the value replaces.",
        examples=[["jobs['flows'].pysparkJob.args[0]"]])
    description: Annotated[str, Field(max_length=1024)] = Field(default="", description="Free text.",
                                                                examples=["Which region's leads to load."])
    regexes: list[str] = Field(default=[], description="validation.regex.regexes: RE2, each matching the whole value",
                               examples=[["--region=[a-z]+"]])
    value: Annotated[str, Field(max_length=1000)] | None = Field(
        default=None, description="The value funnelops sends (default: what the template holds).",
        examples=["--region=north"])

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

    cluster_name: Annotated[str, Field(pattern=r"^[a-z]([a-z0-9-]*[a-z0-9])?$")] = Field(
        default="funnel-cluster", description="The managed cluster's name prefix.", examples=["crm-cluster"])
    master_machine_type: str = Field(default="n2-standard-4", description="The master VM's machine type.",
                                     examples=["n2-standard-8"])
    worker_machine_type: str = Field(default="n2-standard-4", description="The workers' machine type.",
                                     examples=["n2-highmem-4"])
    workers: Annotated[int, Field(ge=0, le=1000)] = Field(
        default=2, description="Primary workers (0: a single-node cluster).", examples=[4])
    image_version: str = Field(default="2.2-debian12", description="The Dataproc image version.",
                               examples=["2.2-debian12"])
    image_uri: str | None = Field(default=None, description="a custom image (URI or family) instead of image_version",
                                  examples=["projects/acme/global/images/family/flows"])
    bootstrap: Literal["wheelhouse", "none"] = Field(
        default="wheelhouse", description="wheelhouse: an initialization action installs the flows' dependencies; "
                                          "none: the image already has them (a custom image)", examples=["none"])
    service_account: Annotated[str, Field(pattern=EMAIL)] | None = Field(
        default=None, description="the cluster VMs' identity; default: project.service_account",
        examples=["dataproc@acme-crm-prod.iam.gserviceaccount.com"])
    scopes: list[str] = Field(default=[SCOPE_CLOUD_PLATFORM], description="OAuth scopes of the cluster VMs.",
                              examples=[[SCOPE_CLOUD_PLATFORM]])
    subnetwork: str | None = Field(default=None, description="a name, or a full/Shared VPC subnetwork URI",
                                   examples=["dataproc-subnet"])
    internal_ip_only: bool = Field(default=True, description="VMs get no external IP (needs Private Google Access).",
                                   examples=[True])
    tags: list[Annotated[str, Field(pattern=NETWORK_TAG)]] = Field(
        default=[], description="Network tags of the VMs (for firewall rules).", examples=[["dataproc"]])
    zone: Annotated[str, Field(pattern=r"^[a-z]+-[a-z]+[0-9]-[a-z]$")] | None = Field(
        default=None, description="A zone of the region (default: Dataproc's auto zone placement).",
        examples=["us-east1-b"])
    properties: dict[str, str] = Field(default={}, description="softwareConfig.properties (prefix:key)",
                                       examples=[{"spark:spark.sql.shuffle.partitions": "64"}])

    @model_validator(mode="after")
    def _one_image(self) -> Placement:
        if self.image_uri and "image_version" in self.model_fields_set:
            raise ValueError("give image_version (a Dataproc image) or image_uri (a custom image), not both")
        return self


class Workflow(Strict):
    name: Annotated[str, Field(pattern=TEMPLATE_ID)] = Field(
        description="The workflow template's id (3-50 letters, digits, _ and -).", examples=["crm-monthly"])
    granularity: Literal["DAY", "MONTH", "YEAR"] = Field(
        description="The period one run processes (the current day, month or year unless --period says).",
        examples=["MONTH"])
    initial_load: bool = Field(
        default=False, description="Whether the 'Initial data' stage runs it (with --execution_type=full: "
                                   "all the raw history).", examples=[True])
    args: list[Annotated[str, Field(pattern=ARG)]] = Field(
        default=[], description="The template's arguments to the flows program (after the variables, before "
                                "the stage's).",
        examples=[["--granularity=MONTH", "--execution_type=delta"]])
    jobs: Annotated[list[WorkflowStep], Field(min_length=1)] = Field(
        description="The template's steps (Dataproc ordered jobs).",
        examples=[[{"step_id": "flows", "main": "funnelops.flows"}]])
    parameters: list[Parameter] = Field(default=[], description="Template parameters of your own (gcp).",
                                        examples=[[]])
    placement: Placement = Field(default=Placement(), description="The managed cluster each gcp run creates.",
                                 examples=[{"workers": 2}])
    dag_timeout: Annotated[str, Field(pattern=DURATION)] = Field(
        default="3600s", description="The longest a run may take (seconds, `s` suffix).", examples=["7200s"])
    labels: Labels = Field(default={}, description="Google Cloud labels.", examples=[{"granularity": "month"}])


class RetryConfig(Strict):
    retry_count: Annotated[int, Field(ge=0, le=5)] = Field(
        default=0, description="How many times a failed trigger is retried.", examples=[2])
    min_backoff_s: Annotated[int, Field(ge=0)] = Field(
        default=5, description="Seconds before the first retry.", examples=[60])
    max_backoff_s: Annotated[int, Field(ge=0)] = Field(
        default=3600, description="Longest wait between retries, in seconds.", examples=[600])
    max_doublings: Annotated[int, Field(ge=0)] = Field(
        default=5, description="How many times the wait doubles before growing linearly.", examples=[3])


class Scheduler(Strict):
    # travels as "[name] description" (Cloud Scheduler has no display name): no brackets, one line
    name: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\[\]\r\n]+$")] = Field(
        description="The name people use (`--scheduler NAME`); one line, no brackets.", examples=["monthly"])
    id: Annotated[str, Field(pattern=SCHEDULER_ID)] = Field(
        description="The Cloud Scheduler job id (lowercase, digits, -); also accepted by --scheduler.",
        examples=["monthly"])
    cron: str = Field(description="When it fires: a 5-field cron in time_zone.", examples=["0 7 1 * *"])
    time_zone: str | None = Field(default=None, description="IANA time zone of cron; default: project.time_zone.",
                                  examples=["UTC"])
    workflow: str = Field(description="The workflow it starts (one of workflows).", examples=["crm-monthly"])
    description: str = Field(default="", description="Free text.", examples=["Monthly load"])
    retry: RetryConfig = Field(default=RetryConfig(), description="Retries of a failed trigger.",
                               examples=[{"retry_count": 2, "min_backoff_s": 60}])
    attempt_deadline: Annotated[str, Field(pattern=DURATION)] = Field(
        default="1800s", description="How long one trigger attempt may take (seconds, `s` suffix).",
        examples=["600s"])
    paused: bool = Field(default=False, description="Created paused (it never fires until resumed).",
                         examples=[True])


class SampleData(Strict):
    """Where the project's sample raw data comes from (`funnelops data generate`, `funnelops demo`)."""

    generator: str = Field(description="a .py file inside the project folder, relative to the project file, "
                                       "that writes sample raw data (contract: funnelops.lifecycle.sample_data)",
                           examples=["generate.py"])


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

    project: Project = Field(description="Where and how the project runs.",
                             examples=[{"id": "acme-crm-prod", "time_zone": "UTC"}])
    variables: dict[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str | int | float | bool] = Field(
        default={}, description="Passed to every workflow run as --key=value (the variable group).",
        examples=[{"env": "dev"}])
    stages: Stages = Field(default=Stages(), description="The argument each lifecycle stage appends to every "
                                                         "workflow template.",
                           examples=[{"iac": ["--refined_flows=false"]}])
    buckets: list[Bucket] = Field(default=[], description="Buckets: one per layer (roles raw, trusted, refined, "
                                                          "artifacts).",
                                  examples=[[{"name": "acme-crm-raw", "role": "raw"}]])
    datasets: list[Dataset] = Field(default=[], description="Datasets (BigQuery) / schemas (DuckDB).",
                                    examples=[[{"id": "crm_refined"}]])
    tables: list[Table] = Field(default=[], description="Managed tables, usually the refined flows' targets.",
                                examples=[[{"dataset": "crm_refined", "name": "leads_per_period",
                                            "schema": [{"name": "period_start", "type": "DATE"}]}]])
    external_tables: list[ExternalTable] = Field(
        default=[], description="Tables over the trusted Parquet folders, read by refined SQL.",
        examples=[[{"dataset": "crm_trusted", "name": "leads", "bucket": "acme-crm-trusted", "prefix": "leads/"}]])
    views: list[View] = Field(default=[], description="Views over the refined tables (created in the Workflow stage).",
                              examples=[[{"dataset": "crm_reporting", "name": "v_leads", "query_file": "sql/v.sql"}]])
    workflows: list[Workflow] = Field(default=[], description="Workflow templates, usually one per granularity.",
                                      examples=[[{"name": "crm-monthly", "granularity": "MONTH",
                                                  "jobs": [{"step_id": "flows"}]}]])
    schedulers: list[Scheduler] = Field(default=[], description="Schedulers: when each workflow runs.",
                                        examples=[[{"name": "monthly", "id": "monthly", "cron": "0 7 1 * *",
                                                    "workflow": "crm-monthly"}]])
    data: SampleData | None = Field(default=None, description="A sample-data generator for `funnelops data "
                                                              "generate` (projects loading real files leave it out).",
                                    examples=[{"generator": "generate.py"}])
    quality: Quality = Field(default=Quality(), description="Data-quality limits every trusted flow is held to.",
                             examples=[{"max_quarantine_share": 0.05}])
    notifications: Notifications | None = Field(
        default=None, description="Alerts on run end (webhook, Slack, Teams; URLs from environment variables).",
        examples=[{"channels": [{"type": "slack", "url_env": "SLACK_WEBHOOK_URL", "on": ["failed", "lost"]}]}])
    # Merged before validation (spec/environments.py): a validated spec never holds overlays; the
    # field is here so the JSON Schema and the reference describe them.
    environments: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,30}$")], dict[str, Any] | None] = Field(
        default={}, description="Named overlays (dev, prod...), each a partial project deep-merged over this file "
                                "when selected with --env NAME (or FUNNELOPS_ENV, or `env` in funnelops.toml): "
                                "mappings merge key by key, lists of named items (name, id, step_id; dataset+name) "
                                "merge by that key, other values are replaced. Without --env the file is used as "
                                "written. See docs/environments.md.",
        examples=[{"dev": {"project": {"id": "acme-crm-dev"}},
                   "prod": {"project": {"id": "acme-crm-prod"},
                            "schedulers": [{"name": "monthly", "paused": False}]}}])

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


# -- notifications (appended: the run-end alerts of issue 13) --------------------------------------
NOTIFY_EVENTS = ("failed", "lost", "done", "cancelled")
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class NotificationChannel(Strict):
    """Where a run's end is posted. The URL is a secret: only the name of the environment variable
    that holds it is in the project, so it never reaches a commit, a log, the ledger or `--json`."""

    type: Literal["webhook", "slack", "teams"] = Field(
        description="webhook: a JSON POST of the run's facts; slack: a Slack incoming webhook (text + "
                    "blocks); teams: a Teams Workflows (or incoming) webhook (an Adaptive Card message).",
        examples=["slack"])
    url_env: Annotated[str, Field(pattern=ENV_NAME)] = Field(
        description="The environment variable holding the webhook URL when the run ends (unset: a warning "
                    "in the run's log naming the variable, never a failed run).",
        examples=["SLACK_WEBHOOK_URL"])
    on: Annotated[list[Literal["failed", "lost", "done", "cancelled"]], Field(min_length=1)] = Field(
        default=["failed", "lost"], description="The run ends that are posted: failed, lost (its process died), "
                                                "and optionally done and cancelled.",
        examples=[["failed", "lost", "done"]])


class GcpAlert(Strict):
    """A Cloud Monitoring log-based alert policy on failed Dataproc jobs and workflows (gcp, made by IaC):
    it also covers runs that bypass funnelops (a template instantiated from the console)."""

    notification_channels: Annotated[list[Annotated[str, Field(
        pattern=r"^projects/[a-z][a-z0-9-]{4,28}[a-z0-9]/notificationChannels/[0-9]+$")]], Field(min_length=1)] = Field(
        description="Cloud Monitoring notification channels (full names) the alert notifies.",
        examples=[["projects/acme-crm-prod/notificationChannels/1234567890"]])
    rate_limit: Annotated[str, Field(pattern=DURATION)] = Field(
        default="300s", description="At most one notification per this period (Google requires a rate limit "
                                    "on log-match conditions).", examples=["3600s"])
    auto_close: Annotated[str, Field(pattern=DURATION)] = Field(
        default="604800s", description="An incident with no new matching log closes after this long.",
        examples=["86400s"])

    @field_validator("rate_limit")
    @classmethod
    def _five_minutes_at_least(cls, value: str) -> str:
        """Cloud Monitoring's shortest time between notifications of a log-based alert is 5 minutes."""
        if int(value[:-1]) < 300:
            raise ValueError("a log-based alert notifies at most once per 5 minutes: use 300s or more")
        return value


class Notifications(Strict):
    """Who is told when a run ends: channels posted by the local supervisor or the gcp watcher."""

    channels: list[NotificationChannel] = Field(
        default=[], description="Webhooks posted once per run end (exactly once, whoever observes it).",
        examples=[[{"type": "slack", "url_env": "SLACK_WEBHOOK_URL"}]])
    timeout_s: Annotated[float, Field(gt=0, le=60)] = Field(
        default=5.0, description="Seconds one POST may take (2 retries on 5xx or a refused connection; a "
                                 "receiver that hangs is not retried).", examples=[5, 10])
    gcp_alert: GcpAlert | None = Field(
        default=None, description="gcp: also create a log-based alert policy on failed Dataproc jobs "
                                  "(Cloud Monitoring); not applicable on the local backend.",
        examples=[{"notification_channels": ["projects/acme-crm-prod/notificationChannels/1234567890"]}])
