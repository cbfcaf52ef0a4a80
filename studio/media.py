"""Image bytes: the one module that opens them with Pillow.

What a file is (format, size, transparency) and whether an upload suits a gateway's offer;
storing uploads; palettes; input images made ready for a gateway's wire; result downloads
(guarded), thumbnails and zips of a job's images; signed upload URLs.

Every limit comes from the catalog, and the rules on an image's sides and bytes are
validate()'s own (gateways.request.sides_problem, size_problem): this module only reads files
and compares. Checks return plain-words problems so the create form can show each one next to
its file.
"""

import base64
import binascii
import dataclasses
import hashlib
import io
import logging
import os
import warnings
import zipfile
from decimal import ROUND_DOWN, Decimal

import requests
from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.urls import reverse
from PIL import Image as PILImage

from studio.gateways import catalog
from studio.gateways.request import InputImage, sides_problem, size_problem
from studio.models import Image, Upload

log = logging.getLogger(__name__)

MIME_BY_FORMAT = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "BMP": "image/bmp",
    "WEBP": "image/webp",
    "GIF": "image/gif",  # only from a gateway: uploads are held to the offer's input formats
}
# What a file's name may end with for each format it really is; the first is the one it is
# stored under.
EXTENSIONS = {
    "JPEG": ("jpg", "jpeg", "jpe", "jfif"),
    "PNG": ("png",),
    "BMP": ("bmp", "dib"),
    "WEBP": ("webp",),
    "GIF": ("gif",),
}
FORMAT_NAMES = "JPEG, PNG, BMP or WEBP"
# Read no image whose header claims more pixels than the largest allowed input: a small file
# that decodes to gigabytes (a decompression bomb) is refused before it is decoded.
MAX_INPUT_PIXELS = catalog.INPUT_MAX_SIDE * catalog.INPUT_MAX_SIDE
PALETTE_DEFAULT_COLOURS = 5

MIME_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-ms-bmp": "image/bmp"}
# Formats that can't carry transparency: sent as they are without opening them.
OPAQUE_FORMATS = ("image/jpeg", "image/bmp")

MAX_RESULT_BYTES = 60 * 1024 * 1024
THUMBNAIL_EDGE = 512
DOWNLOAD_ATTEMPTS = 3
UPLOAD_URL_SALT = "studio.public-upload"
UPLOAD_URL_SECONDS = 2 * 60 * 60

# One pooled session for result downloads; results come from a handful of CDN hosts.
download_session = requests.Session()
download_session.headers["User-Agent"] = "ImageStudio/0.1 (+self-hosted)"


class NotAnImage(Exception):
    pass


# --- facts ---------------------------------------------------------------------------------


class Facts:
    """What Pillow found in a file."""

    def __init__(self, fmt, width, height, has_alpha):
        self.format = fmt
        self.width = width
        self.height = height
        self.has_alpha = has_alpha

    @property
    def mime(self):
        return MIME_BY_FORMAT.get(self.format, "application/octet-stream")


def extension(fmt):
    return EXTENSIONS.get(fmt, ("bin",))[0]


def read_facts(data):
    """(Facts, problem): the image's format, size and transparency, or why it can't be used."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            with PILImage.open(io.BytesIO(data)) as image:
                fmt, width, height = image.format, image.width, image.height
                if width * height > MAX_INPUT_PIXELS:
                    return None, (f"It is {width}×{height} px, far larger than any gateway takes "
                                  f"(at most {catalog.INPUT_MAX_SIDE} px a side).")
                image.verify()
            with PILImage.open(io.BytesIO(data)) as image:
                image.load()
                has_alpha = image_has_alpha(image)
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        return None, "It decodes to far more pixels than its file size suggests, so it was refused."
    except (OSError, SyntaxError, ValueError):
        return None, f"It is not an image Image Studio can read (use {FORMAT_NAMES})."
    return Facts(fmt, width, height, has_alpha), ""


def image_has_alpha(image):
    """True when the image has transparent pixels (not merely an alpha channel)."""
    if image.mode in ("RGBA", "LA", "PA"):
        low, _ = image.getchannel("A").getextrema()
        return low < 255
    if "transparency" in image.info:
        return True
    return False


# --- uploads -------------------------------------------------------------------------------


def name_problem(name, fmt):
    """A file whose name says one format but whose bytes are another."""
    extension_given = os.path.splitext(name or "")[1].lower().lstrip(".")
    if not extension_given or MIME_BY_FORMAT.get(fmt) not in catalog.WAN_INPUT_FORMATS:
        return ""  # a format no gateway takes is refused by check_facts; renaming would not help
    if extension_given in EXTENSIONS[fmt]:
        return ""
    return (f"Its name ends in .{extension_given} but it is really a {fmt} image; "
            f"rename it or save it again as {fmt}.")


def check_facts(facts, size, offer):
    """Problems with an image of these facts and byte size for a gateway's offer.

    Returns (errors, warnings): errors stop the job; warnings say what will be done about it.
    The sides and bytes are checked by validate()'s own rules; the format and transparency
    are this check's: validate() takes any image, as prepare_input re-encodes what it must.
    """
    errors, notes = [], []
    too_big = size_problem("It", size)
    if too_big:
        errors.append(too_big)
    formats = offer.input_formats if offer else catalog.WAN_INPUT_FORMATS
    if facts.mime not in formats:
        errors.append(f"It is a {facts.format or 'unknown'} image; use {FORMAT_NAMES}.")
    sides = sides_problem("It", facts.width, facts.height)
    if sides:
        errors.append(sides)
    if facts.has_alpha and offer is not None and not offer.input_transparency:
        notes.append(f"It has transparent areas; {offer.gateway_display_name} takes images without "
                     "transparency, so they will be sent filled with white.")
    return errors, notes


def read_file(file):
    """The bytes of an uploaded file. One over the size limit is refused (ValueError, in plain
    words) by its size alone: Django has spooled it to disk, and it is never read into memory."""
    if file.size is not None and file.size > catalog.INPUT_MAX_BYTES:
        raise ValueError(size_problem("It", file.size))
    return file.read()


def check_file(data, name, offer):
    """(facts, errors, warnings) for uploaded bytes checked against a gateway's offer."""
    if not data:
        return None, ["The file is empty."], []
    if len(data) > catalog.INPUT_MAX_BYTES:
        # Not even opened: the size alone rules it out.
        return None, [size_problem("It", len(data))], []
    facts, problem = read_facts(data)
    if facts is None:
        return None, [problem], []
    errors, notes = check_facts(facts, len(data), offer)
    mismatch = name_problem(name, facts.format)
    if mismatch:
        errors.insert(0, mismatch)
    return facts, errors, notes


class UploadRefused(Exception):
    """An uploaded file that can't be used, with every reason in plain words."""

    def __init__(self, messages):
        super().__init__(" ".join(messages))
        self.messages = messages


def take_upload(user, file, offer):
    """(Upload, warnings): an uploaded file checked against a gateway's offer and stored for
    `user`. Raises UploadRefused with the reasons when it can't be used."""
    try:
        data = read_file(file)
    except ValueError as exc:
        raise UploadRefused([str(exc)]) from None
    facts, errors, notes = check_file(data, file.name, offer)
    if errors:
        raise UploadRefused(errors)
    return store(user, data, file.name, facts), notes


def upload_bytes(upload):
    """The stored bytes of an upload."""
    with upload.file.open("rb") as handle:
        return handle.read()


def check_upload(upload, offer):
    """(errors, warnings) for a stored upload against the gateway chosen now."""
    fmt = next((key for key, mime in MIME_BY_FORMAT.items() if mime == upload.mime), upload.mime)
    facts = Facts(fmt, upload.width, upload.height, upload.has_alpha)
    return check_facts(facts, upload.bytes, offer)


def store(user, data, name, facts):
    """An Upload row owned by `user` for bytes that passed read_facts."""
    base = os.path.basename(name or "") or f"image.{facts.format.lower()}"
    upload = Upload(
        owner=user, original_name=base[:255], mime=facts.mime, width=facts.width, height=facts.height,
        bytes=len(data), sha256=hashlib.sha256(data).hexdigest(), has_alpha=facts.has_alpha,
    )
    upload.file.save(safe_filename(base, facts), ContentFile(data), save=False)
    upload.save()
    return upload


def safe_filename(name, facts):
    stem = "".join(c for c in os.path.splitext(name)[0] if c.isalnum() or c in "-_")[:60] or "image"
    return f"{stem}.{extension(facts.format)}"


def copy_image(image, user):
    """A new Upload owned by `user` holding a gallery image's original, to use as a reference."""
    with image.file.open("rb") as handle:
        data = handle.read()
    facts, problem = read_facts(data)
    if facts is None:
        raise ValueError(problem)
    return store(user, data, f"image-{image.job_id}-{image.index + 1}.{extension(facts.format)}", facts)


# --- palettes ------------------------------------------------------------------------------------


def palette_from(data, colours=PALETTE_DEFAULT_COLOURS):
    """The image's main colours with their shares: [{"hex": "#C2D1E6", "ratio": "23.51%"}, ...].

    Ratios have two decimals and add up to exactly 100.00%, as the gateways require. Raises
    ValueError in plain words when the image can't give a palette.
    """
    facts, problem = read_facts(data)
    if facts is None:
        raise ValueError(problem)
    colours = max(catalog.PALETTE_MIN_COLOURS, min(catalog.PALETTE_MAX_COLOURS, colours))
    with PILImage.open(io.BytesIO(data)) as image:
        image = flatten(image)
        image.thumbnail((256, 256))
        quantized = image.quantize(colors=colours, method=PILImage.Quantize.MEDIANCUT)
        counts = sorted(quantized.getcolors() or [], reverse=True)
        palette = quantized.getpalette() or []
    found = [(count, "#{:02X}{:02X}{:02X}".format(*palette[index * 3:index * 3 + 3]))
             for count, index in counts if count]
    merged = {}
    for count, colour in found:
        merged[colour] = merged.get(colour, 0) + count
    if len(merged) < catalog.PALETTE_MIN_COLOURS:
        raise ValueError(f"This image has fewer than {catalog.PALETTE_MIN_COLOURS} distinct colours; "
                         "pick the palette by hand.")
    ordered = sorted(merged.items(), key=lambda item: -item[1])
    ratios = percentages([count for _, count in ordered])
    return [{"hex": colour, "ratio": f"{ratio}%"} for (colour, _), ratio in zip(ordered, ratios, strict=True)]


def flatten(image):
    if image_has_alpha(image):
        rgba = image.convert("RGBA")
        flat = PILImage.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def percentages(counts):
    """Shares of the counts as Decimals with two places, summing to exactly 100.00, none zero
    (largest remainder: round all down, hand the missing hundredths to the largest remainders)."""
    total = sum(counts)
    hundredths = [Decimal(count) * 10000 / total for count in counts]
    floors = [max(1, int(value.to_integral_value(rounding=ROUND_DOWN))) for value in hundredths]
    missing = 10000 - sum(floors)
    order = sorted(range(len(counts)), key=lambda i: hundredths[i] - int(hundredths[i]), reverse=True)
    step = 1 if missing > 0 else -1
    i = 0
    while missing:
        index = order[i % len(order)]
        if step > 0 or floors[index] > 1:
            floors[index] += step
            missing -= step
        i += 1
    return [(Decimal(value) / 100).quantize(Decimal("0.01")) for value in floors]


# --- inputs for the wire ----------------------------------------------------------------------


def input_meta(upload):
    return {"width": upload.width, "height": upload.height, "mime": upload.mime, "bytes": upload.bytes}


def public_upload_url(upload):
    """A short-lived URL of an upload that a gateway can fetch (foxapi takes only URLs)."""
    token = signing.dumps(upload.pk, salt=UPLOAD_URL_SALT, compress=True)
    return settings.STUDIO_PUBLIC_URL + reverse("public_upload", args=[token])


def upload_id_from_token(token):
    return signing.loads(token, salt=UPLOAD_URL_SALT, max_age=UPLOAD_URL_SECONDS)


def input_images(job):
    """The job's input images, each ready for its gateway's wire (prepare_input)."""
    offer = catalog.offer(job.gateway, job.model)
    images = []
    for item in job.inputs.select_related("upload"):
        upload = item.upload
        image = InputImage(
            data=upload_bytes(upload),
            mime=upload.mime,
            width=upload.width,
            height=upload.height,
            url=public_upload_url(upload),
        )
        images.append(prepare_input(image, offer))
    return images


def prepare_input(image, offer):
    """The InputImage with its data_uri for the offer's wire, so the adapter only sends it.

    One that can't be converted gets a `problem` instead, and its adapter fails the job as
    rejected with those words, before sending anything.
    """
    if offer is None or offer.input_urls_only:
        # No offer: the adapter refuses the request itself. URLs only: the gateway fetches image.url.
        return image
    try:
        uri = as_data_uri(image.data, image.mime, offer.input_formats, offer.input_transparency)
    except NotAnImage:
        problem = f"An input image ({image.mime}) could not be read to convert it."
        return dataclasses.replace(image, problem=problem)
    return dataclasses.replace(image, data_uri=uri)


def as_data_uri(data, mime, formats, transparency):
    """`data:{mime};base64,...` for an input image, re-encoded when the gateway needs it.

    Sent unchanged when its format is one of `formats` and it has no transparency the gateway
    would refuse (anyfast: "PNG (no transparency)"). Otherwise it is re-encoded as PNG, with
    transparent pixels flattened onto white when `transparency` is False, or as JPEG if that
    PNG would pass the 20 MB input limit. Raises NotAnImage when it must be opened and can't.
    """
    mime = MIME_ALIASES.get(mime, mime)
    if mime in formats and (transparency or mime in OPAQUE_FORMATS):
        return data_uri(mime, data)
    try:
        with PILImage.open(io.BytesIO(data)) as opened:
            opened.load()
            has_alpha = image_has_alpha(opened)
            if mime in formats and not has_alpha:
                return data_uri(mime, data)
            if has_alpha and not transparency:
                converted = flatten(opened)
            else:
                converted = opened.convert("RGBA" if has_alpha else "RGB")
    except (OSError, PILImage.DecompressionBombError) as exc:  # UnidentifiedImageError included
        raise NotAnImage(str(exc)) from None
    out = io.BytesIO()
    converted.save(out, format="PNG")
    if out.tell() <= catalog.INPUT_MAX_BYTES or converted.mode == "RGBA":
        return data_uri("image/png", out.getvalue())
    out = io.BytesIO()
    converted.save(out, format="JPEG", quality=92)
    return data_uri("image/jpeg", out.getvalue())


def data_uri(mime, data):
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


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
    timeout = (settings.STUDIO_GATEWAY_CONNECT_TIMEOUT, settings.STUDIO_DOWNLOAD_READ_TIMEOUT)
    with download_session.get(url, stream=True, timeout=timeout) as response:
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
    facts, problem = read_facts(data)
    if facts is None:
        raise NotAnImage(problem)
    index = entry["index"]
    # Stored exactly as the gateway sent it: originals are never re-encoded.
    name = f"{index + 1:02d}-{hashlib.sha256(data).hexdigest()[:12]}.{extension(facts.format)}"
    image = Image(
        job=job,
        owner_id=job.owner_id,
        index=index,
        width=facts.width,
        height=facts.height,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        mime=facts.mime,
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


# --- a job's images as one zip -------------------------------------------------------------


class ChunkWriter:
    """A write-only file for zipfile that hands each written chunk to the response."""

    def __init__(self):
        self.chunks = []
        self.offset = 0

    def write(self, data):
        self.chunks.append(bytes(data))
        self.offset += len(data)
        return len(data)

    def tell(self):
        return self.offset

    def flush(self):
        pass

    def take(self):
        chunks, self.chunks = self.chunks, []
        return b"".join(chunks)


def zip_stream(images):
    """The images' originals as one uncompressed zip, yielded in chunks as it is written."""
    sink = ChunkWriter()
    # No seeking: entries carry data descriptors, so the archive streams as it is written.
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        for image in images:
            name = image.file.name.rsplit("/", 1)[-1]
            info = zipfile.ZipInfo(name, date_time=image.created.timetuple()[:6])
            with archive.open(info, "w", force_zip64=True) as entry, image.file.open("rb") as handle:
                while chunk := handle.read(256 * 1024):
                    entry.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
