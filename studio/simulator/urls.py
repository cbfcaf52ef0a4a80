"""Mounted at /sim/ by studio/urls.py: path("sim/", include("studio.simulator.urls"))."""

from django.urls import re_path

from studio.simulator import views

app_name = "simulator"

GATEWAY = r"(?P<gateway>anyfast|apimart|gccai|foxapi)"
TASK_ID = r"(?P<task_id>[A-Za-z0-9_.-]+)"

urlpatterns = [
    re_path(rf"^{GATEWAY}/v1/images/generations$", views.generations, name="generations"),
    re_path(rf"^{GATEWAY}/v1/tasks/{TASK_ID}$", views.task_status, name="task"),
    re_path(rf"^{GATEWAY}/files/{TASK_ID}/(?P<index>[0-9]+)\.png$", views.result_file, name="file"),
    re_path(rf"^{GATEWAY}/_requests$", views.recent_requests, name="requests"),
]
