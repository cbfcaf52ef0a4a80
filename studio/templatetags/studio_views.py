"""Small presentation helpers for job cards and the gallery (no domain logic: it reads)."""

from django import template
from django.utils import timezone

from studio import ledger
from studio.gateways import catalog
from studio.models import Job

register = template.Library()

STATUS_BADGES = {
    Job.SUCCEEDED: "ok",
    Job.PARTIAL: "warn",
    Job.FAILED: "danger",
    Job.CANCELLED: "",
}
MODE_LABELS = dict(Job.MODE_CHOICES)


class Card:
    """What a job card shows, worked out once per render."""

    def __init__(self, job):
        self.job = job
        found = catalog.offer(job.gateway, job.model)
        self.model_name = found.display_name if found else job.model
        gateway = catalog.GATEWAYS.get(job.gateway)
        self.gateway_name = gateway.display_name if gateway else job.gateway
        self.is_sync = bool(gateway) and not gateway.is_async
        self.mode_label = MODE_LABELS.get(job.mode, job.mode)
        self.badge = STATUS_BADGES.get(job.status, "accent")
        self.images = sorted(job.images.all(), key=lambda image: image.index)
        self.held, self.charged = ledger.job_cost(job)

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
        return next((share for share in self.job.shares.all() if not share.revoked), None)

    @property
    def can_cancel(self):
        return self.job.status in (Job.QUEUED, Job.SUBMITTING, Job.RUNNING)

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
