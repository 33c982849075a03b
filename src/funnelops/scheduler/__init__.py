"""The local scheduler: cron evaluation across DST, Cloud Scheduler retries, and the daemon."""

from .cron import CronError, fires_between, next_fire, next_fire_many, next_fires
from .daemon import EventKind, FireOutcome, InlineExecutor, ScheduledJob, SchedulerDaemon, SchedulerEvent
from .retry import RetryPolicy, retry_delay_s

__all__ = ["CronError", "fires_between", "next_fire", "next_fire_many", "next_fires", "EventKind",
           "FireOutcome", "InlineExecutor", "ScheduledJob", "SchedulerDaemon", "SchedulerEvent",
           "RetryPolicy", "retry_delay_s"]
