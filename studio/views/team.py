"""The Team page: jobs teammates shared with a team of the viewer, image by image, with their
author's name; the lightbox, originals and thumbnails reached only through it; and Remix.

A teammate looks, downloads and remixes; deleting, public links and cancelling stay with the
owner (their views use get_own_or_404, so a teammate gets 404 there).
"""

import json
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from studio import library, teams
from studio.views.files import serve_original, serve_thumbnail
from studio.views.gallery import image_page

TEMPLATE = "team/index.html"


@require_GET
@login_required
def index(request: HttpRequest):
    def shared(values):
        return library.team_images(request.user, values).select_related("job", "owner")

    return image_page(request, TEMPLATE, shared, teams=teams.teams_of(request.user))


@require_GET
@login_required
def detail(request: HttpRequest, pk: int):
    image = teams.get_team_image_or_404(request.user, pk=pk)
    filters = library.ImageFilters(request.GET)
    newer, older = library.neighbours(library.team_images(request.user, filters.values), image)
    context = {"image": image, "job": image.job, "newer": newer, "older": older, "query": filters.query,
               "inputs": list(image.job.inputs.all()), "team": True, "taken": None}
    if request.htmx:
        return render(request, "gallery/index.html#lightbox", context)
    return render(request, "team/image.html", context)


@require_GET
@login_required
def image_file(request: HttpRequest, pk: int):
    return serve_original(request, teams.get_team_image_or_404(request.user, pk=pk))


@require_GET
@login_required
def image_thumbnail(request: HttpRequest, pk: int):
    return serve_thumbnail(teams.get_team_image_or_404(request.user, pk=pk))


@require_POST
@login_required
def remix(request: HttpRequest, pk: int):
    """A teammate's remix: the inputs become uploads of their own, then the create page opens
    with the job's settings; the new job is theirs and charged to them."""
    job = teams.get_team_job_or_404(request.user, pk=pk)
    copies = teams.copied_inputs(job, request.user)
    query = [("remix", job.pk)] + [("upload", upload.pk) for upload, _ in copies]
    query += [(f"boxes_{upload.pk}", json.dumps(boxes)) for upload, boxes in copies if boxes]
    return redirect(f"{reverse('create')}?{urlencode(query)}")
