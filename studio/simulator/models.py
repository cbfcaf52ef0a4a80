from django.db import models
from django.utils import timezone


class SimTask(models.Model):
    """One generation the simulator accepted. Its status is derived from the clock (created +
    latency) and the fault, so any process reading the row sees the same task."""

    gateway = models.CharField(max_length=16)
    task_id = models.CharField(max_length=64, unique=True)
    # 1, 2, 3 … per gateway; its parity picks which documented result shape the task answers with.
    number = models.PositiveIntegerField()
    model = models.CharField(max_length=64)
    body = models.JSONField()  # the request body exactly as received
    mode = models.CharField(max_length=16)  # "text-to-image" | "edit"
    n = models.PositiveSmallIntegerField()  # images asked for
    result_count = models.PositiveSmallIntegerField()  # images the task makes (fewer with "partial")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    fault = models.CharField(max_length=32, blank=True)
    latency = models.FloatField()  # seconds from created to completed
    created = models.DateTimeField(default=timezone.now)
    # Forces a status ("cancelled", "failed", …) regardless of the clock; set by tests or the admin.
    status_override = models.CharField(max_length=16, blank=True)
    polls = models.PositiveIntegerField(default=0)
    # The last input image, shrunk, so edit results can be rendered in any process later on.
    base_image = models.BinaryField(null=True, blank=True)
    input_sizes = models.JSONField(default=list)  # [[w, h], …] of every input, to scale boxes
    billed_images = models.PositiveSmallIntegerField(default=0)
    billed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["gateway", "number"])]

    def __str__(self):
        return f"{self.gateway} {self.task_id}"


class SimRequest(models.Model):
    """A generation request as received, valid or not, for last_request() and /_requests."""

    gateway = models.CharField(max_length=16)
    received = models.DateTimeField(default=timezone.now)
    body = models.JSONField()
    status = models.PositiveSmallIntegerField(null=True, blank=True)  # what was answered; None = no answer

    class Meta:
        indexes = [models.Index(fields=["gateway", "-id"])]

    def __str__(self):
        return f"{self.gateway} {self.received:%H:%M:%S} {self.status}"
