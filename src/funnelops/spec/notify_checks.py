"""Notes `validate` gives about `notifications:` (never errors: a run never fails for an alert).

* the gcp alert policy is not applicable on the local backend (the supervisor posts run ends);
* a channel whose `url_env` is not set here: runs started from this shell (and `watch`) would
  not post to it. The variable's value is never read into the note, only its name.
"""

from __future__ import annotations

import os

from funnelops.errors import Problem
from funnelops.spec.project import LoadedProject


def notification_notes(loaded: LoadedProject, backend: str) -> list[Problem]:
    n = loaded.spec.notifications
    if n is None:
        return []
    file = str(loaded.path)
    out = []
    if n.gcp_alert is not None and backend == "local":
        out.append(Problem(file, loaded.lines.get(("notifications", "gcp_alert")), "notifications.gcp_alert",
                           "note: not applicable on the local backend (no Cloud Monitoring); locally the "
                           "run's supervisor posts run ends to the channels", "it is made on gcp by IaC"))
    for i, ch in enumerate(n.channels):
        if not os.environ.get(ch.url_env):
            out.append(Problem(file, loaded.lines.get(("notifications", "channels", i)),
                               f"notifications.channels[{i}].url_env",
                               f"note: {ch.url_env} is not set here: runs started from this environment "
                               f"will not post to this {ch.type} channel",
                               f"export {ch.url_env} where runs start (and where `funnelops watch` runs)"))
    return out
