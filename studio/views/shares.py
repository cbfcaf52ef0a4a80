"""Public share links: creating them (with their options) on a job card or an image, revoking
them, My links (/shares/), and the public page /s/<token>/ with its images."""

import hashlib

from django.contrib.auth.decorators import login_not_required, login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponseNotModified
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import get_conditional_response
from django.utils.http import quote_etag
from django.views.decorators.http import require_GET, require_POST

from studio import sharing
from studio.access import get_own_or_404
from studio.models import Image, Job, Share

PANEL = "jobs/index.html#share-panel"


@require_POST
@login_required
def create(request: HttpRequest, pk: int):
    job = get_own_or_404(Job.objects, request.user, pk=pk)
    options = sharing.LinkOptions(request.POST)
    share = sharing.create_link(request.user, job, options.cleaned_data) if options.is_valid() else None
    if not request.htmx:
        return redirect(reverse("shares") if share else reverse("jobs") + f"#job-{job.pk}")
    return render(request, PANEL, {"job": job, "share": share, "options": options})


@require_POST
@login_required
def create_for_image(request: HttpRequest, pk: int):
    image = get_own_or_404(Image.objects.select_related("job"), request.user, pk=pk)
    options = sharing.LinkOptions(request.POST)
    if not options.is_valid():
        return render(request, "shares/options_page.html", {"image": image, "options": options}, status=400)
    sharing.create_link(request.user, image.job, options.cleaned_data, image=image)
    return redirect("shares")


@require_GET
@login_required
def mine(request: HttpRequest):
    """My links: every link the person made, with its options, views and dates."""
    return render(request, "shares/index.html", {"links": sharing.links_of(request.user)})


@require_POST
@login_required
def revoke(request: HttpRequest, token: str):
    share = get_object_or_404(Share.objects.select_related("job"), token=token)
    job = get_own_or_404(Job.objects, request.user, pk=share.job_id)
    sharing.revoke(share)
    if request.POST.get("back") == "shares":
        return redirect("shares")
    if not request.htmx:
        return redirect(reverse("jobs") + f"#job-{job.pk}")
    return render(request, PANEL, {"job": job, "share": None})


@login_not_required  # anyone with the link; the token is the access check
@require_GET
def page(request: HttpRequest, token: str):
    """What anyone with the link sees: the images (and, if chosen, how they were made), nothing
    else of the portal's and nothing about the person who made them."""
    share = sharing.live_link_or_404(token)
    sharing.record_view(share)
    images = list(sharing.shared_images(share))
    response = render(request, "shares/page.html", {"share": share, "images": images, "job": share.job})
    if not share.listed:
        response["X-Robots-Tag"] = "noindex"
    response["Referrer-Policy"] = "no-referrer"
    return response


@login_not_required
@require_GET
def image(request: HttpRequest, token: str, image_id: int, kind: str):
    share = sharing.live_link_or_404(token)
    found = sharing.shared_images(share).filter(pk=image_id).first()
    if found is None:
        raise Http404("No such image in this share.")
    thumb = kind == "thumb" and bool(found.thumbnail)
    field, mime = (found.thumbnail, "image/webp") if thumb else (found.file, found.mime)
    # No max-age: the browser asks every time, so a revoked link stops working at once (404);
    # while the link lives, the ETag (a stored file is never rewritten) turns that into a 304.
    etag = quote_etag(hashlib.sha256(field.name.encode()).hexdigest()[:20])
    headers = {"Cache-Control": "private, no-cache", "ETag": etag}
    if not share.listed:
        headers["X-Robots-Tag"] = "noindex"
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
