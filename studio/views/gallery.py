"""The gallery: every image of the user, the lightbox, and an image's actions."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from studio import media
from studio.access import get_own_or_404, get_owned_or_404
from studio.forms import Attached, CreateForm
from studio.models import Image
from studio.paging import keyset_page

TEMPLATE = "gallery/index.html"
PAGE_SIZE = 60


def owned_images(user, favourites=False):
    images = Image.objects.filter(owner=user)
    return images.filter(favourite=True) if favourites else images


@require_GET
@login_required
def index(request: HttpRequest):
    favourites = request.GET.get("favourites") == "1"
    before = request.GET.get("before")
    found = owned_images(request.user, favourites).select_related("job")
    images, next_before = keyset_page(found, before, PAGE_SIZE)
    context = {"images": images, "next_before": next_before, "favourites": favourites, "before": before}
    if request.htmx and not request.htmx.boosted:
        return render(request, TEMPLATE + "#tiles", context)
    return render(request, TEMPLATE, context)


def neighbours(user, image, favourites):
    """The images before and after this one in gallery order (newest first)."""
    images = owned_images(image.owner if user.is_staff else user, favourites)
    newer = images.filter(pk__gt=image.pk).order_by("id").values_list("pk", flat=True).first()
    older = images.filter(pk__lt=image.pk).order_by("-id").values_list("pk", flat=True).first()
    return newer, older


@require_GET
@login_required
def detail(request: HttpRequest, pk: int):
    """The lightbox: the image, its metadata and its actions (a page of its own without JS)."""
    image = get_owned_or_404(Image.objects.select_related("job"), request.user, pk=pk)
    favourites = request.GET.get("favourites") == "1"
    newer, older = neighbours(request.user, image, favourites)
    job = image.job
    context = {
        "image": image, "job": job, "newer": newer, "older": older, "favourites": favourites,
        "inputs": list(job.inputs.select_related("upload")),
        "taken": (job.finished - (job.submitted or job.created)).total_seconds() if job.finished else None,
    }
    if request.htmx:
        return render(request, TEMPLATE + "#lightbox", context)
    return render(request, "gallery/image.html", context)


@require_POST
@login_required
def favourite(request: HttpRequest, pk: int):
    image = get_own_or_404(Image.objects, request.user, pk=pk)
    image.favourite = not image.favourite
    image.save(update_fields=["favourite"])
    if request.htmx:
        return render(request, TEMPLATE + "#favourite", {"image": image})
    return redirect("gallery_image", pk=image.pk)


@require_POST
@login_required
def reference(request: HttpRequest, pk: int):
    """Use as reference: a copy of the image becomes a new upload of the user, on the create form."""
    image = get_own_or_404(Image.objects, request.user, pk=pk)
    upload = media.copy_image(image, request.user)
    if request.htmx and request.htmx.target == "chips":
        form = CreateForm.from_post(request.user, request.POST)
        errors, notes = media.check_upload(upload, form.offer)
        return render(request, "create/index.html#chip",
                      {"item": Attached(upload, errors=errors, warnings=notes), "form": form})
    url = f"{reverse('create')}?upload={upload.pk}"
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


@require_http_methods(["GET", "POST"])
@login_required
def delete(request: HttpRequest, pk: int):
    """GET asks for confirmation (without JS); POST deletes the files and the row."""
    image = get_own_or_404(Image.objects.select_related("job"), request.user, pk=pk)
    if image.job.is_active:
        # Charges count the images stored when the job ends: wait for it.
        message = "This image's job is still finishing; delete the image once it is done."
        return HttpResponse(message, status=409)
    if request.method == "GET":
        return render(request, "gallery/delete.html", {"image": image})
    media.delete_images([image])
    if request.htmx:
        # Pages remove the image's tile or thumbnail themselves, wherever it is shown.
        response = render(request, TEMPLATE + "#deleted", {"image_id": pk})
        return trigger_client_event(response, "image-deleted", {"id": pk})
    return redirect("gallery")
