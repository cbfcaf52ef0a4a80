"""Public share links: creating and revoking them on a job card, and the public page /s/<token>/."""

import hashlib

from django.contrib.auth.decorators import login_not_required, login_required
from django.db.models import Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponseNotModified
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import get_conditional_response
from django.utils.http import quote_etag
from django.views.decorators.http import require_GET, require_POST

from studio.access import get_own_or_404
from studio.models import Image, Job, Share

PANEL = "jobs/index.html#share-panel"


def live_share(token):
    """The share for a token if it still works; 404 when revoked, expired or unknown."""
    live = Q(expires__isnull=True) | Q(expires__gt=timezone.now())
    return get_object_or_404(Share.objects.select_related("job").filter(live, revoked=False), token=token)


def shared_images(share):
    images = Image.objects.filter(job=share.job).order_by("index")
    return images.filter(pk=share.image_id) if share.image_id else images


@require_POST
@login_required
def create(request: HttpRequest, pk: int):
    job = get_own_or_404(Job.objects, request.user, pk=pk)
    share = Share.objects.filter(job=job, image=None, revoked=False).first()
    if share is None:
        share = Share.objects.create(job=job, created_by=request.user)
    if not request.htmx:
        return redirect(reverse("jobs") + f"#job-{job.pk}")
    return render(request, PANEL, {"job": job, "share": share})


@require_POST
@login_required
def revoke(request: HttpRequest, token: str):
    share = get_object_or_404(Share.objects.select_related("job"), token=token)
    job = get_own_or_404(Job.objects, request.user, pk=share.job_id)
    Share.objects.filter(pk=share.pk).update(revoked=True)
    if not request.htmx:
        return redirect(reverse("jobs") + f"#job-{job.pk}")
    return render(request, PANEL, {"job": job, "share": None})


@login_not_required  # anyone with the link; the token is the access check
@require_GET
def page(request: HttpRequest, token: str):
    """What anyone with the link sees: the images, nothing about the person who made them."""
    share = live_share(token)
    response = render(request, "shares/page.html", {"share": share, "images": shared_images(share)})
    response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = "no-referrer"
    return response


@login_not_required
@require_GET
def image(request: HttpRequest, token: str, image_id: int, kind: str):
    share = live_share(token)
    found = shared_images(share).filter(pk=image_id).first()
    if found is None:
        raise Http404("No such image in this share.")
    thumb = kind == "thumb" and bool(found.thumbnail)
    field, mime = (found.thumbnail, "image/webp") if thumb else (found.file, found.mime)
    # No max-age: the browser asks every time, so a revoked link stops working at once (404);
    # while the link lives, the ETag (a stored file is never rewritten) turns that into a 304.
    etag = quote_etag(hashlib.sha256(field.name.encode()).hexdigest()[:20])
    headers = {"Cache-Control": "private, no-cache", "ETag": etag, "X-Robots-Tag": "noindex"}
    if get_conditional_response(request, etag=etag) is not None:
        return HttpResponseNotModified(headers=headers)
    try:
        handle = field.open("rb")
    except FileNotFoundError:
        raise Http404("This file is missing.") from None
    response = FileResponse(handle, content_type=mime, as_attachment=request.GET.get("download") == "1",
                            filename=field.name.rsplit("/", 1)[-1], headers=headers)
    response["X-Content-Type-Options"] = "nosniff"
    return response
