"""Private media: originals, thumbnails and uploads, served only to their owner (and staff).

Stored files live outside any public URL; every request goes through get_owned_or_404, so
another user's ids answer 404. Names carry a content hash (and rows never change their
file), so browsers may keep them for a year.
"""

import os

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, StreamingHttpResponse
from django.views.decorators.http import require_GET

from studio import library, media
from studio.access import get_owned_or_404
from studio.models import Image, Upload

CACHE_FOREVER = "private, max-age=31536000, immutable"


def serve(field, content_type, filename, attachment, cache_control=CACHE_FOREVER):
    if not field or not field.name:
        raise Http404("This file is missing.")
    try:
        handle = field.open("rb")
    except FileNotFoundError:
        raise Http404("This file is missing.") from None
    response = FileResponse(handle, content_type=content_type, as_attachment=attachment, filename=filename)
    response["Cache-Control"] = cache_control
    response["X-Content-Type-Options"] = "nosniff"
    return response


def zip_download(images, filename):
    """The images' originals as one zip with their manifest.json, streamed as it is written."""
    stream = media.zip_stream(images, library.manifest(images), library.entry_name)
    response = StreamingHttpResponse(stream, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def download_name(image):
    extension = os.path.splitext(image.file.name)[1] or ".png"
    return f"image-studio-{image.job_id}-{image.index + 1}{extension}"


def serve_original(request, image):
    """The original as the gateway made it: inline for the lightbox, ?download=1 to save it."""
    return serve(image.file, image.mime, download_name(image), request.GET.get("download") == "1")


# The thumbnail's address answers with the original until the thumbnail is made: the browser
# must ask again, not keep the original under that address for a year.
NOT_KEPT = "private, no-cache"


def serve_thumbnail(image):
    """The image's thumbnail; its original until the thumbnail is made (media.thumbnails_later)."""
    if not image.thumbnail:
        return serve(image.file, image.mime, download_name(image), False, cache_control=NOT_KEPT)
    return serve(image.thumbnail, "image/webp", f"thumb-{image.pk}.webp", False)


@require_GET
@login_required
def image_original(request: HttpRequest, pk: int):
    return serve_original(request, get_owned_or_404(Image.objects, request.user, pk=pk))


@require_GET
@login_required
def image_thumbnail(request: HttpRequest, pk: int):
    return serve_thumbnail(get_owned_or_404(Image.objects, request.user, pk=pk))


@require_GET
@login_required
def upload_file(request: HttpRequest, pk: int):
    upload = get_owned_or_404(Upload.objects, request.user, pk=pk)
    return serve(upload.file, upload.mime, upload.original_name, request.GET.get("download") == "1")
