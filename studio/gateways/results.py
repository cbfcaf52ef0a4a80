"""What an adapter hands back: a task's state and the images it made."""

from dataclasses import dataclass, field

from studio.gateways.errors import GatewayError

PENDING, RUNNING, COMPLETED, FAILED, CANCELLED = "pending", "running", "completed", "failed", "cancelled"

# Gateways' status words mapped onto ours. "processing" is the documented word on both async
# protocols; the others are spellings seen on sibling APIs, accepted so a renamed status
# doesn't strand a job.
STATUS_WORDS = {
    "pending": PENDING,
    "queued": PENDING,
    "submitted": PENDING,
    "processing": RUNNING,
    "running": RUNNING,
    "in_progress": RUNNING,
    "completed": COMPLETED,
    "succeeded": COMPLETED,
    "success": COMPLETED,
    "failed": FAILED,
    "failure": FAILED,
    "error": FAILED,
    "cancelled": CANCELLED,
    "canceled": CANCELLED,
}


@dataclass
class Result:
    index: int  # 0-based position in the job's output
    url: str | None = None  # expires about 24 hours after generation: download at once
    b64_json: str | None = None
    revised_prompt: str = ""


@dataclass
class TaskState:
    remote_id: str | None
    status: str
    progress: int | None = None  # 0-100
    estimated_seconds: int | None = None
    results: list[Result] = field(default_factory=list)
    error: GatewayError | None = None  # set when status == "failed"
    usage: dict | None = None
    partial_failures: list[str] = field(default_factory=list)  # images that failed (Seedream)


def status_from_word(word):
    """Our status for a gateway's status word; an unknown word counts as still running, so the
    job keeps polling until its deadline rather than failing on a spelling."""
    return STATUS_WORDS.get(str(word or "").strip().lower(), RUNNING)


def whole_number(value):
    """An int from a gateway's number (int, float or numeric string), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(float(value))
        except ValueError:
            return None
    return None


def progress_from(value):
    number = whole_number(value)
    if number is None:
        return None
    return max(0, min(100, number))
