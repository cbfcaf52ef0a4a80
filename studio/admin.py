from django.contrib import admin

from studio.models import Budget, Image, Job, JobEvent, JobInput, LedgerEntry, Price, Share, Upload


class JobEventInline(admin.TabularInline):
    model = JobEvent
    extra = 0
    can_delete = False
    readonly_fields = ["at", "old_status", "new_status", "note"]

    def has_add_permission(self, request, obj=None):
        return False


class JobInputInline(admin.TabularInline):
    model = JobInput
    extra = 0
    can_delete = False
    readonly_fields = ["upload", "position", "boxes"]

    def has_add_permission(self, request, obj=None):
        return False


class LedgerInline(admin.TabularInline):
    model = LedgerEntry
    extra = 0
    can_delete = False
    readonly_fields = ["created", "kind", "amount", "images", "note"]
    fields = readonly_fields

    def has_add_permission(self, request, obj=None):
        return False


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


@admin.register(LedgerEntry)
class LedgerEntryAdmin(admin.ModelAdmin):
    list_display = ["id", "created", "user", "job", "kind", "amount", "images", "note"]
    list_filter = ["kind"]
    search_fields = ["user__username", "note"]

    def get_readonly_fields(self, request, obj=None):
        # Append-only: existing rows are never edited; admins add `adjustment` rows instead.
        if obj is not None:
            return [f.name for f in LedgerEntry._meta.fields]
        return ["job", "images"]

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is None and "kind" in form.base_fields:
            form.base_fields["kind"].choices = [(LedgerEntry.ADJUSTMENT, "Adjustment")]
        return form

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
