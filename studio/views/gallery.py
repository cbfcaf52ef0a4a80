"""The gallery: every image of the user, the lightbox, and an image's actions."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect, trigger_client_event

from studio import library, media, teams
from studio.access import get_own_or_404, get_owned_or_404, to_id
from studio.forms import Attached, CreateForm
from studio.models import Image
from studio.views.files import zip_download

TEMPLATE = "gallery/index.html"
PAGE_SIZE = 60


@require_GET
@login_required
def index(request: HttpRequest):
    def mine(values):
        return library.own_images(request.user, values).select_related("job")

    return image_page(request, TEMPLATE, mine)


def image_page(request, template, images_for, **extra):
    """A page of image tiles, the gallery's or the Team page's: `images_for(filter values)` is
    the set it shows, filtered and keyset-paged from the URL. htmx asks for the next tiles (with
    a cursor) or for the results alone (a new search)."""
    filters = library.ImageFilters(request.GET)
    images, after = library.page(images_for(filters.values), filters, request.GET.get("after"), PAGE_SIZE)
    context = {"images": images, "after": after, "filters": filters, "cursor": request.GET.get("after"),
               "query": filters.query, **extra}
    if request.htmx and not request.htmx.boosted:
        return render(request, template + ("#tiles" if context["cursor"] else "#results"), context)
    return render(request, template, context)


@require_GET
@login_required
def detail(request: HttpRequest, pk: int):
    """The lightbox: the image, its metadata and its actions (a page of its own without JS)."""
    image = get_owned_or_404(Image.objects.select_related("job"), request.user, pk=pk)
    filters = library.ImageFilters(request.GET)
    newer, older = library.neighbours(library.own_images(image.owner, filters.values), image)
    job = image.job
    context = {
        "image": image, "job": job, "newer": newer, "older": older, "query": filters.query,
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
        # The tile behind the lightbox shows its star at once.
        response = render(request, TEMPLATE + "#favourite", {"image": image})
        return trigger_client_event(response, "favourite-changed", {"id": image.pk, "on": image.favourite})
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


# --- several at once ---------------------------------------------------------------------------


def selection(request):
    return library.selected(request.user, [to_id(pk) for pk in request.POST.getlist("image")])


def back_to_gallery(request, message):
    messages.info(request, message)
    back = request.POST.get("back", "")
    return redirect(back if back.startswith("/gallery/") else reverse("gallery"))


@require_GET
@login_required
def download_selection(request: HttpRequest):
    """The chosen images as one zip with a manifest.json telling what made each."""
    images = library.selected(request.user, [to_id(pk) for pk in request.GET.getlist("image")])
    if not images:
        return HttpResponse("Select at least one of your images to download.", status=400)
    return zip_download(images, f"image-studio-{len(images)}-images.zip")


@require_POST
@login_required
def favourite_selection(request: HttpRequest):
    images = selection(request)
    Image.objects.filter(pk__in=[image.pk for image in images]).update(favourite=True)
    return back_to_gallery(request, f"{len(images)} image{pluralize(len(images))} marked as favourite.")


@require_POST
@login_required
def delete_selection(request: HttpRequest):
    """Deletes the chosen images of finished jobs; images of jobs still running are kept
    (their charge counts the images stored when the job ends)."""
    images = selection(request)
    done = [image for image in images if not image.job.is_active]
    media.delete_images(done)
    kept = len(images) - len(done)
    note = f" {kept} of a job still running {'were' if kept != 1 else 'was'} kept." if kept else ""
    return back_to_gallery(request, f"{len(done)} image{pluralize(len(done))} deleted.{note}")


@require_POST
@login_required
def team_selection(request: HttpRequest):
    images = selection(request)
    if not teams.teams_of(request.user):
        return back_to_gallery(request, "You are in no team yet: an admin adds people to teams.")
    teams.share_with_all_teams({image.job for image in images}, request.user)
    jobs_count = len({image.job_id for image in images})
    return back_to_gallery(request, f"{jobs_count} job{pluralize(jobs_count)} shared with your team.")
