"""Log lines people can search: one per job transition and one per gateway call, with the same
fields every time (job, gateway, status, seconds, error_class). With STUDIO_LOG_JSON=1 every
line of the `studio` loggers is one JSON object, for a log store to index.

Only ids, names, statuses, durations and error classes go in: never a request, an answer, a URL
or an error message, which is where a gateway could echo an API key back.
"""

import json
import logging
from datetime import UTC, datetime

events = logging.getLogger("studio.events")

FIELDS = ("event", "job", "gateway", "status", "old_status", "seconds", "error_class")


def event(name, job=None, gateway="", status="", seconds=None, error_class="", **more):
    """One searchable line: `name` is "job.transition" or "gateway.submit" / "gateway.poll"."""
    fields = {"event": name, "job": job, "gateway": gateway, "status": status, "error_class": error_class,
              **more}
    if seconds is not None:
        fields["seconds"] = round(seconds, 3)
    text = " ".join(f"{key}={value}" for key, value in fields.items() if value not in (None, ""))
    events.info(text, extra={"fields": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and an event's fields."""

    def format(self, record):
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["error_class"] = line.get("error_class") or record.exc_info[0].__name__
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)
