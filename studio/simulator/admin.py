from django.contrib import admin

from studio.simulator.models import SimRequest, SimTask


@admin.register(SimTask)
class SimTaskAdmin(admin.ModelAdmin):
    list_display = (
        "task_id",
        "gateway",
        "model",
        "mode",
        "n",
        "result_count",
        "fault",
        "created",
        "billed_images",
    )
    list_filter = ("gateway", "fault")
    search_fields = ("task_id",)
    exclude = ("base_image",)


@admin.register(SimRequest)
class SimRequestAdmin(admin.ModelAdmin):
    list_display = ("id", "gateway", "received", "status")
    list_filter = ("gateway", "status")
