"""The job card's view model (Card) and the small filters the job, gallery and create pages use
(no domain logic: they read)."""

from django import template
from django.utils import timezone

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


class Card:
    """What a job card shows, worked out once per render."""

    def __init__(self, job):
        self.job = job
        found = catalog.offer(job.gateway, job.model)
        self.model_name = found.display_name if found else job.model
        gateway = catalog.GATEWAYS.get(job.gateway)
        self.gateway_name = gateway.display_name if gateway else job.gateway
        self.is_sync = bool(gateway) and not gateway.is_async
        self.mode_label = catalog.MODES[job.mode].title if job.mode in catalog.MODES else job.mode
        self.takes_seed = bool(found) and found.supports(catalog.SEED, job.mode)
        self.badge = STATUS_BADGES.get(job.status, "accent")
        self.images = sorted(job.images.all(), key=lambda image: image.index)
        self.cost = ledger.job_cost(job)

    @property
    def slots(self):
        """Thumbnails, with empty boxes for images still to come so the card never jumps."""
        count = len(self.images)
        if self.job.is_active:
            count = max(count, self.job.n_requested)
        return self.images + [None] * (count - len(self.images))

    @property
    def percent(self):
        if self.job.status == Job.DOWNLOADING:
            return 100
        return self.job.progress

    @property
    def shown_percent(self):
        """What the bar shows: the gateway's progress while running, 100 once images are in."""
        if self.job.status in (Job.SUCCEEDED, Job.PARTIAL):
            return 100
        return self.percent

    @property
    def eta_seconds(self):
        """Seconds left by the gateway's own estimate, if it gave one."""
        job = self.job
        if not job.is_active or not job.estimated_seconds or not job.submitted:
            return None
        left = job.estimated_seconds - (timezone.now() - job.submitted).total_seconds()
        return max(0, int(left))

    @property
    def elapsed_seconds(self):
        job = self.job
        end = job.finished or timezone.now()
        return max(0, int((end - job.created).total_seconds()))

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
