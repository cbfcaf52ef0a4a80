"""Image Studio's tables.

Rules that live elsewhere on purpose: Job.status changes only through jobs.transition();
LedgerEntry rows are only written by ledger.py and never updated or deleted.
"""

import secrets
import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import Q
from django.utils import timezone

from studio.gateways import catalog


def today():
    """Today's date in the portal's time zone."""
    return timezone.localdate()


def this_month():
    """The first day of the current month, in the portal's time zone."""
    return today().replace(day=1)


def upload_path(instance, filename):
    return f"uploads/{instance.owner_id}/{uuid.uuid4().hex}/{filename}"


def original_path(instance, filename):
    return f"images/{instance.job.owner_id}/{instance.job_id}/{filename}"


def thumbnail_path(instance, filename):
    return f"thumbs/{instance.job.owner_id}/{instance.job_id}/{filename}"


class Upload(models.Model):
    """An input image a user uploaded, kept so a job can be retried or remixed."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="uploads")
    file = models.FileField(upload_to=upload_path, max_length=300)
    original_name = models.CharField(max_length=255)
    mime = models.CharField(max_length=50)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    has_alpha = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self):
        return f"{self.original_name} ({self.width}×{self.height})"


class Job(models.Model):
    QUEUED = "queued"
    SUBMITTING = "submitting"
    RUNNING = "running"
    DOWNLOADING = "downloading"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"
    FAILED = "failed"
    CANCELLED = "cancelled"
    STATUS_CHOICES = [
        (QUEUED, "Queued"),
        (SUBMITTING, "Submitting"),
        (RUNNING, "Running"),
        (DOWNLOADING, "Downloading"),
        (SUCCEEDED, "Succeeded"),
        (PARTIAL, "Partly succeeded"),
        (FAILED, "Failed"),
        (CANCELLED, "Cancelled"),
    ]
    ACTIVE_STATUSES = (QUEUED, SUBMITTING, RUNNING, DOWNLOADING)

    MODE_CHOICES = [(key, mode.title) for key, mode in catalog.MODES.items()]

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="jobs")
    gateway = models.CharField(max_length=20)
    model = models.CharField(max_length=60)
    mode = models.CharField(max_length=20, choices=MODE_CHOICES)
    prompt = models.TextField(blank=True)
    # The normalized request (gateways.request.ImageRequest.to_dict()), without image bytes.
    request = models.JSONField()
    uploads = models.ManyToManyField(Upload, through="JobInput", related_name="jobs")
    n_requested = models.PositiveSmallIntegerField(default=1)

    status = models.CharField(max_length=20, choices=STATUS_CHOICES, default=QUEUED, db_index=True)
    remote_task_id = models.CharField(max_length=200, blank=True)
    progress = models.PositiveSmallIntegerField(null=True, blank=True)
    estimated_seconds = models.PositiveIntegerField(null=True, blank=True)
    # When the result is expected, from what the gateway said (its estimate, its progress) or,
    # when it says nothing, from how long this gateway × model took lately. The poll lane asks
    # at this moment, and the card's time-based progress counts towards it.
    expected_result = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error_class = models.CharField(max_length=20, blank=True)
    error_message = models.TextField(blank=True)
    # Set when a person has to look: the gateway may have run (and billed) work we never saw.
    needs_review = models.BooleanField(default=False, db_index=True)
    review_reason = models.CharField(max_length=200, blank=True)

    # What the gateway returned, kept so a download interrupted by a crash can be resumed:
    # [{"index", "url" or "incoming" (a stored b64 result), "revised_prompt"}]
    results = models.JSONField(default=list, blank=True)
    # host:pid of the worker that last took the job, so recovery can tell a dead one.
    claimed_by = models.CharField(max_length=100, blank=True)

    # Set when the person stopped waiting after the job was sent: the gateway can't be stopped,
    # so the job is still followed, and its images stored and charged.
    stopped_by_user = models.BooleanField(default=False)
    # Both from ledger.quote() when the job is created: the hold is hold_amount, and each image
    # is charged at unit_price, whatever the price table says later.
    unit_price = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    hold_amount = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    usage = models.JSONField(null=True, blank=True)

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    # The day it was made, in the portal's time zone: what the cost review filters and groups on
    # (computing it from `created` costs a function call per row on SQLite).
    day = models.DateField(default=today, db_index=True)
    submitted = models.DateTimeField(null=True, blank=True)
    first_result = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    next_poll = models.DateTimeField(null=True, blank=True, db_index=True)
    updated = models.DateTimeField(auto_now=True)
    hidden = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["owner", "-id"]),
            models.Index(fields=["status", "next_poll"]),
            # Covers the cost review's grouped counts: a range of days read from the index alone.
            models.Index(
                fields=["day", "owner", "gateway", "model", "status", "needs_review", "stopped_by_user"],
                name="job_review_cover",
            ),
        ]

    def __str__(self):
        return f"Job {self.pk} ({self.status})"

    @property
    def is_active(self):
        return self.status in self.ACTIVE_STATUSES


class JobInput(models.Model):
    """An upload used by a job, in the order the gateway receives it ("image 1", "image 2")."""

    job = models.ForeignKey(Job, models.CASCADE, related_name="inputs")
    upload = models.ForeignKey(Upload, models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField()
    # Boxes drawn on this image, in its own pixels: [[x1, y1, x2, y2], ...]
    boxes = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [models.UniqueConstraint(fields=["job", "position"], name="job_input_position")]

    def __str__(self):
        return f"image {self.position + 1} of job {self.job_id}"


class JobEvent(models.Model):
    """One status move of a job, kept for the admin's history."""

    job = models.ForeignKey(Job, models.CASCADE, related_name="events")
    old_status = models.CharField(max_length=20, blank=True)
    new_status = models.CharField(max_length=20)
    note = models.TextField(blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self):
        return f"{self.old_status or 'new'} → {self.new_status}"


class Image(models.Model):
    job = models.ForeignKey(Job, models.PROTECT, related_name="images")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="images")
    index = models.PositiveSmallIntegerField()
    file = models.FileField(upload_to=original_path, max_length=300)
    thumbnail = models.FileField(upload_to=thumbnail_path, max_length=300, blank=True)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    bytes = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    mime = models.CharField(max_length=50)
    revised_prompt = models.TextField(blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    favourite = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["owner", "-id"]),
            # The gallery's order: newest job first, a job's images in their order (1 of 4 first).
            models.Index(fields=["owner", "-job", "index"], name="image_gallery_order"),
            # The watchdog's look for thumbnails not made (jobs.make_lost_thumbnails): few rows.
            models.Index(
                fields=["created"], condition=models.Q(thumbnail=""), name="image_thumbnail_missing"
            ),
        ]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="image_job_index")]

    def __str__(self):
        return f"Image {self.index + 1} of job {self.job_id}"


def new_share_token():
    return secrets.token_urlsafe(24)


class Share(models.Model):
    """A public link to a job's images (or one image)."""

    token = models.CharField(max_length=64, unique=True, default=new_share_token)
    job = models.ForeignKey(Job, models.CASCADE, related_name="shares")
    image = models.ForeignKey(Image, models.CASCADE, null=True, blank=True, related_name="shares")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True)
    expires = models.DateTimeField(null=True, blank=True)
    revoked = models.BooleanField(default=False)
    # Off by default: a link shows the images only, unless the person chose to show how they
    # were made.
    include_prompt = models.BooleanField(default=False)
    # Listed links may be indexed by search engines; the others say noindex.
    listed = models.BooleanField(default=False)
    # Views of the public page, counted with an UPDATE … + 1 (never read-modify-write).
    views = models.PositiveIntegerField(default=0)

    def __str__(self):
        return f"share of job {self.job_id}"


class TeamShare(models.Model):
    """A job its owner shared with one of their teams (a Django group).

    Teammates see it only while both they and the owner are in that team (teams.py).
    """

    job = models.ForeignKey(Job, models.CASCADE, related_name="team_shares")
    team = models.ForeignKey(Group, models.CASCADE, related_name="team_shares")
    shared_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="+")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["job", "team"], name="team_share_job_team")]

    def __str__(self):
        return f"job {self.job_id} shared with {self.team_id}"


class FormMemory(models.Model):
    """The create form's last gateway × model, mode and options of one person (never the
    prompt), so a reload or a later visit starts where they left off."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, models.CASCADE, related_name="form_memory")
    values = models.JSONField(default=dict)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"create form of {self.user_id}"


class Budget(models.Model):
    """A monthly spending limit for one user or one team (a Django group)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, models.CASCADE, null=True, blank=True, related_name="budget"
    )
    team = models.OneToOneField(Group, models.CASCADE, null=True, blank=True, related_name="budget")
    monthly_limit = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(user__isnull=False, team__isnull=True) | Q(user__isnull=True, team__isnull=False)
                ),
                name="budget_user_xor_team",
            )
        ]

    def __str__(self):
        who = self.user or self.team
        return f"{who}: ¥{self.monthly_limit} a month"


class Price(models.Model):
    """An admin-set unit price, for gateways that publish none or to follow a price change."""

    gateway = models.CharField(max_length=20)
    model = models.CharField(max_length=60)
    unit_price = models.DecimalField(max_digits=10, decimal_places=4)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gateway", "model"], name="price_gateway_model")]

    def __str__(self):
        return f"{self.gateway} {self.model}: ¥{self.unit_price}"


class LedgerEntry(models.Model):
    """Append-only money record. Corrections are new `adjustment` rows, never edits."""

    HOLD = "hold"
    CHARGE = "charge"
    RELEASE = "release"
    ADJUSTMENT = "adjustment"
    KIND_CHOICES = [(HOLD, "Hold"), (CHARGE, "Charge"), (RELEASE, "Release"), (ADJUSTMENT, "Adjustment")]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.PROTECT, related_name="ledger_entries")
    job = models.ForeignKey(Job, models.PROTECT, null=True, blank=True, related_name="ledger_entries")
    kind = models.CharField(max_length=20, choices=KIND_CHOICES)
    amount = models.DecimalField(max_digits=12, decimal_places=4)
    images = models.PositiveSmallIntegerField(default=0)
    note = models.CharField(max_length=200, blank=True)
    # The staff member who wrote an adjustment (its reason is the note); empty for the rows
    # the pipeline writes.
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The first day of the month this row counts in (ledger.month_of): its job's month, so a job
    # held on the 31st and settled on the 1st is all in the month it was made.
    month = models.DateField(db_index=True, default=this_month)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        # Spend of one person in one month: the header badge, budgets and the Spend page.
        indexes = [
            models.Index(fields=["user", "month"]),
            # Covers the cost review's sums per job, so they never read the table's rows.
            models.Index(fields=["job", "kind", "amount", "images"], name="ledger_review_cover"),
        ]
        constraints = [
            # One hold, one charge and one release per job: a second settlement cannot be written.
            models.UniqueConstraint(
                fields=["job", "kind"],
                condition=Q(kind__in=["hold", "charge", "release"]),
                name="ledger_one_settlement_per_job",
            )
        ]

    def __str__(self):
        return f"{self.kind} ¥{self.amount} (job {self.job_id})"


class Lease(models.Model):
    """A named lease held by one worker at a time (the lane), taken by compare-and-set."""

    name = models.CharField(max_length=50, primary_key=True)
    holder = models.CharField(max_length=100, blank=True)
    expires = models.DateTimeField()

    def __str__(self):
        return f"{self.name} held by {self.holder or 'nobody'}"


class Heartbeat(models.Model):
    """A long-lived process saying it still lives: a worker cluster (its workers beat for it) or
    a lane. Liveness is the age of `beat`, whatever host it ran on (workers.is_alive)."""

    CLUSTER, LANE = "cluster", "lane"
    KINDS = [(CLUSTER, "worker cluster"), (LANE, "lane")]

    identity = models.CharField(max_length=100, primary_key=True)  # "host:pid", as in Job.claimed_by
    kind = models.CharField(max_length=20, choices=KINDS, default=CLUSTER)
    host = models.CharField(max_length=100)
    started = models.DateTimeField(default=timezone.now)
    beat = models.DateTimeField(db_index=True)

    def __str__(self):
        return f"{self.kind} {self.identity} at {self.beat:%H:%M:%S}"
