"""Files: input images for gateways, downloads of results, thumbnails, signed upload URLs."""

import base64
import binascii
import hashlib
import io
import logging

import requests
from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.urls import reverse
from PIL import Image as PILImage

from studio.gateways.request import InputImage
from studio.models import Image

log = logging.getLogger(__name__)

MAX_RESULT_BYTES = 60 * 1024 * 1024
THUMBNAIL_EDGE = 512
DOWNLOAD_ATTEMPTS = 3
MIME_BY_FORMAT = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "GIF": "image/gif",
}
EXTENSION_BY_FORMAT = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "BMP": "bmp", "GIF": "gif"}
UPLOAD_URL_SALT = "studio.public-upload"
UPLOAD_URL_SECONDS = 2 * 60 * 60

# One pooled session for result downloads; results come from a handful of CDN hosts.
download_session = requests.Session()
download_session.headers["User-Agent"] = "ImageStudio/0.1 (+self-hosted)"


class NotAnImage(Exception):
    pass


# --- inputs --------------------------------------------------------------------------------


def input_meta(upload):
    return {"width": upload.width, "height": upload.height, "mime": upload.mime, "bytes": upload.bytes}


def public_upload_url(upload):
    """A short-lived URL of an upload that a gateway can fetch (foxapi takes only URLs)."""
    token = signing.dumps(upload.pk, salt=UPLOAD_URL_SALT, compress=True)
    return settings.STUDIO_PUBLIC_URL + reverse("public_upload", args=[token])


def upload_id_from_token(token):
    return signing.loads(token, salt=UPLOAD_URL_SALT, max_age=UPLOAD_URL_SECONDS)


def input_images(job):
    images = []
    for item in job.inputs.select_related("upload"):
        upload = item.upload
        with upload.file.open("rb") as handle:
            data = handle.read()
        images.append(
            InputImage(
                data=data,
                mime=upload.mime,
                width=upload.width,
                height=upload.height,
                url=public_upload_url(upload),
            )
        )
    return images


# --- results -------------------------------------------------------------------------------


def store_incoming(job, index, b64_json):
    """Keep a base64 result on disk until it is processed, so the job row stays small."""
    data = b""  # an empty file fails the image check later, in plain words
    if len(b64_json) <= MAX_RESULT_BYTES * 4 // 3 + 4:
        try:
            data = base64.b64decode(b64_json, validate=False)
        except (binascii.Error, ValueError):
            pass
    return default_storage.save(f"incoming/{job.pk}/{index}.bin", ContentFile(data))


def fetch(url):
    """Stream a result URL with a size cap; raises requests errors or ValueError."""
    connect = getattr(settings, "STUDIO_GATEWAY_CONNECT_TIMEOUT", 10)
    read = getattr(settings, "STUDIO_DOWNLOAD_READ_TIMEOUT", 60)
    with download_session.get(url, stream=True, timeout=(connect, read)) as response:
        response.raise_for_status()
        declared = int(response.headers.get("Content-Length") or 0)
        if declared > MAX_RESULT_BYTES:
            raise ValueError(f"the image is {declared} bytes, over the {MAX_RESULT_BYTES} limit")
        chunks, size = [], 0
        for chunk in response.iter_content(256 * 1024):
            size += len(chunk)
            if size > MAX_RESULT_BYTES:
                raise ValueError(f"the image is over the {MAX_RESULT_BYTES} byte limit")
            chunks.append(chunk)
    return b"".join(chunks)


def inspect(data):
    """(format, width, height) of image bytes, or NotAnImage."""
    try:
        with PILImage.open(io.BytesIO(data)) as image:
            image.verify()
        with PILImage.open(io.BytesIO(data)) as image:
            return image.format, image.width, image.height
    except (OSError, SyntaxError, ValueError, PILImage.DecompressionBombError) as exc:
        raise NotAnImage(str(exc)) from None


def make_thumbnail(data):
    with PILImage.open(io.BytesIO(data)) as image:
        image.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE))
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        out = io.BytesIO()
        image.save(out, "WEBP", quality=82, method=4)
    return out.getvalue()


def result_bytes(entry):
    if "incoming" in entry:
        with default_storage.open(entry["incoming"], "rb") as handle:
            return handle.read()
    last_error = None
    for _ in range(DOWNLOAD_ATTEMPTS):
        try:
            return fetch(entry["url"])
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in (403, 404, 410):
                raise ValueError(f"the gateway's link has expired (HTTP {status})") from None
            last_error = exc
        except requests.RequestException as exc:
            last_error = exc
    raise ValueError(f"could not be downloaded ({type(last_error).__name__})")


def store_result(job, entry, data):
    fmt, width, height = inspect(data)
    index = entry["index"]
    # Stored exactly as the gateway sent it: originals are never re-encoded.
    name = f"{index + 1:02d}-{hashlib.sha256(data).hexdigest()[:12]}.{EXTENSION_BY_FORMAT.get(fmt, 'bin')}"
    image = Image(
        job=job,
        owner_id=job.owner_id,
        index=index,
        width=width,
        height=height,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        mime=MIME_BY_FORMAT.get(fmt, "application/octet-stream"),
        revised_prompt=entry.get("revised_prompt", ""),
        seed=job.request.get("seed"),
    )
    image.file.save(name, ContentFile(data), save=False)
    image.thumbnail.save(f"{index + 1:02d}.webp", ContentFile(make_thumbnail(data)), save=False)
    try:
        image.save()
    except IntegrityError:
        # Another run of the same download stored this index first; keep theirs.
        default_storage.delete(image.file.name)
        default_storage.delete(image.thumbnail.name)
        return None
    return image


def download_results(job):
    """Store every result of the job not stored yet. Returns plain-words problems, if any."""
    have = set(job.images.values_list("index", flat=True))
    problems = []
    for entry in job.results:
        if entry["index"] in have:
            continue
        try:
            data = result_bytes(entry)
            store_result(job, entry, data)
        except (ValueError, NotAnImage, OSError) as exc:
            log.warning("job %s image %s: %s", job.pk, entry["index"], exc)
            problems.append(
                f"Image {entry['index'] + 1} {exc}"
                if isinstance(exc, ValueError)
                else f"Image {entry['index'] + 1} was not a valid image."
            )
            continue
        if "incoming" in entry:
            default_storage.delete(entry["incoming"])
    return problems


def delete_images(images):
    """Delete image rows, then their files once the deletion has committed."""
    images = list(images)
    with transaction.atomic():
        Image.objects.filter(pk__in=[image.pk for image in images]).delete()
        transaction.on_commit(lambda: [delete_image_files(image) for image in images])


def delete_image_files(image):
    for field in (image.file, image.thumbnail):
        if field and field.name and default_storage.exists(field.name):
            default_storage.delete(field.name)
