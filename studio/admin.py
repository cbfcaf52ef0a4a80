from django import forms
from django.contrib import admin

from studio import ledger
from studio.models import Budget, Image, Job, JobEvent, JobInput, LedgerEntry, Price, Share, Upload


class HistoryInline(admin.TabularInline):
    """A job's own records, shown as they are: they are written by jobs.py and ledger.py only."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False


class JobEventInline(HistoryInline):
    model = JobEvent
    fields = ["at", "old_status", "new_status", "note"]


class JobInputInline(HistoryInline):
    model = JobInput
    fields = ["upload", "position", "boxes"]


class LedgerInline(HistoryInline):
    model = LedgerEntry
    fields = ["created", "kind", "amount", "images", "note", "recorded_by"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "gateway", "model", "mode", "status", "needs_review", "created"]
    list_filter = ["status", "needs_review", "gateway", "model", "mode"]
    search_fields = ["prompt", "remote_task_id", "owner__username"]
    # Status and money change only through jobs.py and ledger.py, never by hand here.
    readonly_fields = [f.name for f in Job._meta.fields if f.name not in ("needs_review", "review_reason")]
    inlines = [JobInputInline, JobEventInline, LedgerInline]

    def has_add_permission(self, request):
        return False


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "job", "index", "width", "height", "bytes", "created"]
    list_filter = ["mime"]
    readonly_fields = [f.name for f in Image._meta.fields]


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["id", "owner", "original_name", "mime", "width", "height", "created"]
    readonly_fields = [f.name for f in Upload._meta.fields]


class AdjustmentForm(forms.ModelForm):
    """A new ledger row in the admin is always an adjustment, and it needs a reason."""

    note = forms.CharField(
        label="Reason", max_length=200, help_text="Why the spend is corrected; kept on record."
    )

    class Meta:
        model = LedgerEntry
        fields = ["user", "amount", "note"]


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = ["id", "created", "user", "job", "kind", "amount", "images", "note", "recorded_by"]
    list_filter = ["kind"]
    search_fields = ["user__username", "note"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = AdjustmentForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # Append-only: existing rows are never edited; admins add adjustment rows instead.
        if obj is not None:
            return [f.name for f in LedgerEntry._meta.fields]
        return []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "amount", "note"]
        return super().get_fields(request, obj)

    def save_model(self, request, obj, form, change):
        if change:
            return  # every field is read-only; nothing to save
        entry = ledger.adjust(obj.user, obj.amount, form.cleaned_data["note"], request.user)
        obj.pk = entry.pk
        obj.refresh_from_db()

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "team", "monthly_limit"]


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    list_display = ["gateway", "model", "unit_price", "updated"]


@admin.register(Share)
class ShareAdmin(admin.ModelAdmin):
    list_display = ["token", "job", "image", "created_by", "created", "expires", "revoked"]
