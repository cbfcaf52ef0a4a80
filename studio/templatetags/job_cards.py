"""The job card's view model (Card), the poller's "last seen" token of a card (Seen), and the
small filters the job, gallery and create pages use (no domain logic: they read)."""

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from studio import ledger, sharing, teams
from studio.gateways import catalog
from studio.models import Job

register = template.Library()

STATUS_BADGES = {
    Job.SUCCEEDED: "ok",
    Job.PARTIAL: "warn",
    Job.FAILED: "danger",
    Job.CANCELLED: "",
}

# A time-based estimate never fills the bar: only the gateway's answer says the images are made.
ESTIMATE_CEILING = 95
# Past the expected time it is "any moment now" for a grace of this share of the expected
# duration (at least MIN_GRACE_SECONDS), then "taking longer than expected".
GRACE_SHARE = 0.25
MIN_GRACE_SECONDS = 10
# The gateway's own progress this many points behind the clock's share of the expected time:
# the expectation no longer holds, so say so instead of counting down to "0 s left" at 33%.
BEHIND_BY_POINTS = 25
# Past the expected time with the gateway's progress below this, it is not "any moment now".
ALMOST_DONE = 75
SOON, LATE = "soon", "late"
# What a card's token and its progress part read: all the poller loads of a card it does not
# send whole (a field missing here would cost a query per card; tests/test_views_jobs.py counts).
PROGRESS_FIELDS = ("gateway", "model", "mode", "status", "progress", "estimated_seconds", "expected_result",
                   "submitted", "created", "finished", "updated", "n_requested", "stopped_by_user")


class Card:
    """What a job card shows, worked out once per render."""

    def __init__(self, job, now=None):
        self.job = job
        self.now = now or timezone.now()
        found = catalog.offer(job.gateway, job.model)
        self.model_name = found.display_name if found else job.model
        gateway = catalog.GATEWAYS.get(job.gateway)
        self.gateway_name = gateway.display_name if gateway else job.gateway
        self.is_sync = bool(gateway) and not gateway.is_async
        self.mode_label = catalog.MODES[job.mode].title if job.mode in catalog.MODES else job.mode
        self.takes_seed = bool(found) and found.supports(catalog.SEED, job.mode)
        self.badge = STATUS_BADGES.get(job.status, "accent")

    # Images and money are read when a part that shows them is rendered: the poller's
    # progress-only answer needs neither.
    @cached_property
    def images(self):
        return sorted(self.job.images.all(), key=lambda image: image.index)

    @cached_property
    def cost(self):
        return ledger.job_cost(self.job)

    @cached_property
    def stored(self):
        """Images stored so far: counted in the poller's own query (`stored_images`) when the job
        came from it, else from the images."""
        if hasattr(self.job, "stored_images"):
            return self.job.stored_images
        return len(self.images)

    @property
    def slots(self):
        """Thumbnails, with empty boxes for images still to come so the card never jumps."""
        count = len(self.images)
        if self.job.is_active:
            count = max(count, self.job.n_requested)
        return self.images + [None] * (count - len(self.images))

    # --- progress ---------------------------------------------------------------------------

    @property
    def generating(self):
        """Sent and not answered yet: an async job running, or a sync gateway's long request."""
        job = self.job
        return job.status == Job.RUNNING or (job.status == Job.SUBMITTING and self.is_sync)

    @cached_property
    def expected_end(self):
        """When the result is expected: the pipeline's `expected_result`, else the gateway's own
        estimate counted from the submit; None when neither is known."""
        job = self.job
        if job.expected_result:
            return job.expected_result
        if job.submitted and job.estimated_seconds:
            return job.submitted + timedelta(seconds=job.estimated_seconds)
        return None

    @cached_property
    def time_share(self):
        """How much of the expected time has gone (0.5 = half, above 1 = overdue); None without
        an expectation."""
        start, end = self.job.submitted, self.expected_end
        if not self.generating or start is None or end is None or end <= start:
            return None
        return max(0.0, (self.now - start).total_seconds() / (end - start).total_seconds())

    @cached_property
    def percent(self):
        """What the bar shows, 0-100: the gateway's progress when it gives one, else the clock's
        share of the expected time; None for a bar that only says "working"."""
        job = self.job
        if job.status in (Job.DOWNLOADING, Job.SUCCEEDED, Job.PARTIAL):
            return 100
        if not self.generating:
            return None
        if job.progress is not None:
            return job.progress
        if self.time_share is None:
            return None
        return min(ESTIMATE_CEILING, int(self.time_share * 100))

    @property
    def percent_is_estimate(self):
        """The bar counts the clock towards the expected time, not the gateway's progress."""
        return self.generating and self.job.progress is None and self.percent is not None

    @cached_property
    def time_left(self):
        """What the card says about the time left: seconds (rounded up, never 0), SOON, LATE,
        or None when nothing is expected."""
        end, progress = self.expected_end, self.job.progress
        if not self.generating or end is None:
            return None
        left = (end - self.now).total_seconds()
        if left > 0:
            share = self.time_share
            if progress is not None and share is not None and progress + BEHIND_BY_POINTS < share * 100:
                return LATE
            return rounded_up(left)
        expected = (end - self.job.submitted).total_seconds() if self.job.submitted else 0
        grace = max(MIN_GRACE_SECONDS, GRACE_SHARE * expected)
        if -left <= grace and (progress is None or progress >= ALMOST_DONE):
            return SOON
        return LATE

    @property
    def left_text(self):
        left = self.time_left
        if left is None:
            return ""
        if left == SOON:
            return "any moment now"
        if left == LATE:
            return "taking longer than expected"
        return f"about {duration(left)} left"

    @property
    def stage(self):
        """Where the job is, in words, beside the bar."""
        job = self.job
        if job.status == Job.QUEUED:
            return "Waiting to be sent"
        if job.status == Job.SUBMITTING:
            if self.is_sync:
                return "Generating (this gateway answers when all images are ready)"
            return f"Sending to {self.gateway_name}"
        if job.status == Job.DOWNLOADING:
            return f"Saving images · {self.stored} of {job.n_requested} stored"
        if job.is_active:
            return "Generating"
        return f"Done in {duration(self.elapsed_seconds)}"

    @property
    def elapsed_seconds(self):
        job = self.job
        end = job.finished or self.now
        return max(0, int((end - job.created).total_seconds()))

    # --- the poller's token -----------------------------------------------------------------

    @property
    def seen(self):
        """This card's token for the poller: what the page now shows of it."""
        job = self.job
        return str(Seen(job.pk, stamp(job.updated), self.stored, job.status, self.percent, self.time_left))

    def change_since(self, seen):
        """What a page that last saw `seen` needs: None (nothing changed), "progress" (the
        progress part alone) or "card" (the whole card)."""
        job = self.job
        if seen.images != self.stored or seen.status != job.status:
            return "card"
        if seen.updated == stamp(job.updated):
            # The row is as the page saw it: only the clock can have moved the bar or the words.
            return None if (seen.percent, seen.left) == (self.percent, self.time_left) else "progress"
        # Each poll of a running job writes its progress and estimates; only a person's "stop
        # waiting" changes more of a running card (its note and buttons).
        if job.status == Job.RUNNING and not job.stopped_by_user:
            return "progress"
        return "card"

    # --- the rest of the card ---------------------------------------------------------------

    @property
    def share(self):
        """The newest live job-wide link (the card shows one; My links shows them all)."""
        now = timezone.now()
        live = [share for share in self.job.shares.all() if not share.revoked and not share.image_id
                and (share.expires is None or share.expires > now)]
        return max(live, key=lambda share: share.pk, default=None)

    @property
    def team_ids(self):
        return {found.team_id for found in self.job.team_shares.all()}

    @property
    def can_cancel(self):
        """Cancel before it is sent; after, only stop waiting (once)."""
        return self.job.is_active and not self.job.stopped_by_user

    @property
    def cancel_label(self):
        return "Cancel" if self.job.status == Job.QUEUED else "Stop waiting"

    @property
    def money_note(self):
        """What happened to the money, in words, where the amount alone would mislead."""
        job, cost = self.job, self.cost
        if job.stopped_by_user:
            if job.is_active:
                return ("Stopped by you — the gateway can't be stopped: its images will still be kept "
                        "in your gallery and charged when they arrive.")
            if cost.state == "charged":
                count = len(self.images)
                return (f"Stopped by you — the gateway still made {count} image{'s' if count != 1 else ''} "
                        f"({ledger.yuan(cost.charged)}), kept in your gallery.")
            return "Stopped by you — the gateway made nothing, so nothing was charged."
        if job.status == Job.PARTIAL and cost.state == "charged":
            got = len(self.images)
            return f"{got} of {job.n_requested} images arrived; you paid for {got}."
        return ""

    @property
    def retry_confirm(self):
        """Retrying an unanswered submit may be billed twice: say so before it is sent."""
        if self.cost.state == "unconfirmed":
            return ("The first try may also have been made and billed by the gateway "
                    f"(up to {ledger.yuan(self.cost.held)}). Send it again anyway?")
        return ""

    @property
    def retry_label(self):
        if self.job.status == Job.PARTIAL:
            missing = self.job.n_requested - len(self.images)
            return f"Retry the missing {missing}"
        return "Retry"

    @property
    def can_retry(self):
        return self.job.status in (Job.FAILED, Job.CANCELLED, Job.PARTIAL)

    @property
    def can_delete(self):
        return not self.job.is_active


def rounded_up(seconds):
    """Seconds left as a card says them: up to the next 5 s under a minute, 15 s under ten
    minutes, a whole minute beyond. Never 0, and steady enough not to change on every poll."""
    step = 5 if seconds <= 60 else 15 if seconds <= 600 else 60
    return max(step, math.ceil(seconds / step) * step)


def stamp(moment):
    """A job's `updated` as the token carries it: UTC, microseconds, "Z"."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- what the page last saw of a card --------------------------------------------------------

# id:updated:images:status:percent:left, "-" for no percent or nothing expected, e.g.
# "12:2026-12-06T01:02:03.456789Z:0:running:45:40" or "12:2026-12-06T01:02:03.456789Z:2:downloading:100:-"
SEEN = re.compile(
    r"(?P<id>[1-9][0-9]{0,17}):(?P<updated>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z)"
    r":(?P<images>[0-9]{1,3}):(?P<status>[a-z]{1,20}):(?P<percent>[0-9]{1,3}|-):(?P<left>[0-9]{1,7}|soon|late|-)"
)
MAX_SEEN = 100  # cards in one poll; a page shows a few dozen


@dataclass(frozen=True)
class Seen:
    job_id: int
    updated: str
    images: int
    status: str
    percent: int | None
    left: int | str | None  # seconds, SOON, LATE, or None

    def __str__(self):
        percent = "-" if self.percent is None else self.percent
        left = "-" if self.left is None else self.left
        return f"{self.job_id}:{self.updated}:{self.images}:{self.status}:{percent}:{left}"


def parse_seen(values):
    """{job id: Seen} from the poller's `seen` values. ValueError, in plain words, for anything
    that is not a token a card could have carried: never a guess at what was meant."""
    if len(values) > MAX_SEEN:
        raise ValueError(f"At most {MAX_SEEN} cards can be polled at once, not {len(values)}.")
    found = {}
    for value in values:
        match = SEEN.fullmatch(value)
        if match is None:
            raise ValueError(f"Not a card token: {value[:120]!r} (id:updated:images:status:percent:left).")
        parts = match.groupdict()
        try:
            datetime.fromisoformat(parts["updated"])  # the pattern fixed the form; is it a real day?
        except ValueError:
            raise ValueError(f"Not a time: {parts['updated']!r}.") from None
        if parts["status"] not in Job.ACTIVE_STATUSES:
            raise ValueError(f"Not the status of an active job: {parts['status']!r}.")
        percent = None if parts["percent"] == "-" else int(parts["percent"])
        if percent is not None and percent > 100:
            raise ValueError(f"Not a percentage: {percent}.")
        left = parts["left"]
        left = None if left == "-" else left if left in (SOON, LATE) else int(left)
        seen = Seen(int(parts["id"]), parts["updated"], int(parts["images"]), parts["status"], percent, left)
        if found.setdefault(seen.job_id, seen) != seen:
            raise ValueError(f"Two different tokens for card {seen.job_id}.")
    return found


@register.filter
def card(job):
    return Card(job)


@register.filter
def duration(seconds):
    """73 → "1 min 13 s"."""
    if seconds is None:
        return ""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@register.simple_tag
def progress_part(c, oob=False):
    """A card's progress part: its bar and its line of words, inside the card and sent alone
    by the poller when only the progress changed. Built here rather than in the template: the
    poller sends up to twenty at once, and the template engine took about 0.25 ms for each
    (bench/poll_fragment.py); this takes a tenth of that."""
    job, percent, estimate = c.job, c.percent, c.percent_is_estimate
    active = job.is_active
    seen = ""
    if active:
        seen = format_html('<input type="hidden" name="seen" value="{}" data-poll-seen>', c.seen)
    meter_class = "meter" + (" indeterminate" if percent is None else "") + ("" if active else " done")
    now = format_html(' aria-valuenow="{}"', percent) if percent is not None else ""
    about = (format_html(' aria-valuetext="about {}%, estimated from the expected time"', percent)
             if estimate else "")
    if percent is None:
        shown = ""
    elif estimate:
        shown = format_html(
            '<strong class="percent" title="Estimated from the expected time">≈{}%</strong> · ', percent
        )
    else:
        shown = format_html('<strong class="percent">{}%</strong> · ', percent)
    timing = ""
    if active:
        left = format_html(' · <span class="time-left">{}</span>', c.left_text) if c.left_text else ""
        timing = format_html('{}\n    · <span data-elapsed="{}">{}</span> elapsed', left, c.elapsed_seconds,
                             duration(c.elapsed_seconds))
    return format_html(
        '<div class="job-progress" id="job-progress-{}"{}>\n  {}\n'
        '  <div class="{}" role="progressbar" aria-label="Progress"\n'
        '       aria-valuemin="0" aria-valuemax="100"{}{}>\n'
        '    <svg viewBox="0 0 100 6" preserveAspectRatio="none" aria-hidden="true">'
        '<rect class="fill" width="{}" height="6"/></svg>\n'
        '  </div>\n'
        '  <p class="small muted progress-text">\n    {}{}\n    {}\n  </p>\n</div>',
        job.pk, mark_safe(' hx-swap-oob="true"') if oob else "", seen, meter_class, now, about,
        100 if percent is None else percent, shown, c.stage, timing,
    )


@register.filter
def yuan(amount):
    return "" if amount is None else ledger.yuan(amount)


@register.filter
def field_errors(errors, name):
    return (errors or {}).get(name, [])


@register.simple_tag
def expiry_choices():
    """A public link's expiry choices, from sharing.py (not typed again in templates)."""
    return sharing.EXPIRY_CHOICES


@register.simple_tag(takes_context=True)
def my_teams(context):
    """The viewer's teams, read once per request however many cards the page shows."""
    request = context["request"]
    if not hasattr(request, "studio_teams"):
        request.studio_teams = teams.teams_of(request.user)
    return request.studio_teams
