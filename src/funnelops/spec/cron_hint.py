"""What to say about a cron expression that does not parse: the field at fault, not a generic rule.

`validate` and the scheduler used to answer every bad cron with "use 5 fields: ...", also to a
cron that has 5 fields and one bad value (issue 13). The hint now counts the fields first, then
names the first field croniter refuses on its own, with that field's range. Here, in spec (the
lowest layer that needs it), so both `spec.validate` and `scheduler.cron` can use it.
"""

from __future__ import annotations

# (name, range) of the five fields, in order
FIELDS = (("minute", "0-59"), ("hour", "0-23"), ("day-of-month", "1-31 or L"),
          ("month", "1-12 or jan-dec"), ("day-of-week", "0-7 or sun-sat, 0 and 7 = Sunday"))
SHAPE = "minute hour day-of-month month day-of-week"


def cron_hint(expr: str) -> str:
    """A hint for an invalid cron: the field count when it is wrong, else the first bad field."""
    fields = expr.split()
    if len(fields) != 5:
        return f"a cron has 5 fields ({SHAPE}); this one has {len(fields)}"
    from croniter import croniter

    for i, text in enumerate(fields):
        alone = ["*"] * 5
        alone[i] = text
        if not croniter.is_valid(" ".join(alone)):
            name, allowed = FIELDS[i]
            return f"field {i + 1} ({name}) is '{text}': it takes {allowed}, with lists (,), ranges (-) and steps (/)"
    return "each field parses alone but not together: check the day-of-month and month fields select a real date"
