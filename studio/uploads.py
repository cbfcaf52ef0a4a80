"""Input images: checks against a gateway's limits, storing uploads, and palette extraction.

Every limit comes from the catalog (studio.gateways.catalog); this module only reads the file
with Pillow and compares. Checks return plain-words problems so the create form can show each
one next to its file.
"""

import hashlib
import io
import os
import warnings
from decimal import ROUND_DOWN, Decimal

from django.core.files.base import ContentFile
from PIL import Image as PILImage

from studio.gateways import catalog
from studio.models import Upload

MIME_BY_FORMAT = {"JPEG": "image/jpeg", "PNG": "image/png", "BMP": "image/bmp", "WEBP": "image/webp"}
# What a file's name may end with for each format it really is.
EXTENSIONS = {
    "JPEG": {"jpg", "jpeg", "jpe", "jfif"},
    "PNG": {"png"},
    "BMP": {"bmp", "dib"},
    "WEBP": {"webp"},
}
FORMAT_NAMES = "JPEG, PNG, BMP or WEBP"
# Read no image whose header claims more pixels than the largest allowed input: a small file
# that decodes to gigabytes (a decompression bomb) is refused before it is decoded.
MAX_INPUT_PIXELS = catalog.INPUT_MAX_SIDE * catalog.INPUT_MAX_SIDE
PALETTE_DEFAULT_COLOURS = 5


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


def megabytes(size):
    return f"{size / (1024 * 1024):.1f} MB"


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


def name_problem(name, fmt):
    """A file whose name says one format but whose bytes are another."""
    extension = os.path.splitext(name or "")[1].lower().lstrip(".")
    if not extension or fmt not in EXTENSIONS:
        return ""
    if extension in EXTENSIONS[fmt]:
        return ""
    return (f"Its name ends in .{extension} but it is really a {fmt} image; "
            f"rename it or save it again as {fmt}.")


def check_facts(facts, size, offer):
    """Problems with an image of these facts and byte size for a gateway's offer.

    Returns (errors, warnings): errors stop the job; warnings say what will be done about it.
    """
    errors, notes = [], []
    if size > catalog.INPUT_MAX_BYTES:
        errors.append(f"It is {megabytes(size)}; the limit is {catalog.INPUT_MAX_BYTES // (1024 * 1024)} MB.")
    formats = offer.input_formats if offer else catalog.WAN_INPUT_FORMATS
    if facts.mime not in formats:
        errors.append(f"It is a {facts.format or 'unknown'} image; use {FORMAT_NAMES}.")
    low, high = catalog.INPUT_MIN_SIDE, catalog.INPUT_MAX_SIDE
    width, height = facts.width, facts.height
    if not (low <= width <= high and low <= height <= high):
        errors.append(f"It is {width}×{height} px; each side must be {low}–{high} px.")
    elif max(width, height) > catalog.MAX_ASPECT * min(width, height):
        errors.append(f"It is {width}×{height} px; its aspect ratio must be between 1:8 and 8:1.")
    if facts.has_alpha and offer is not None and not offer.input_transparency:
        notes.append(f"It has transparent areas; {offer.gateway_display_name} takes images without "
                     "transparency, so they will be sent filled with white.")
    return errors, notes


def too_big(size):
    return f"It is {megabytes(size)}; the limit is {catalog.INPUT_MAX_BYTES // (1024 * 1024)} MB."


def read_file(file):
    """The bytes of an uploaded file. One over the size limit is refused (ValueError, in plain
    words) by its size alone: Django has spooled it to disk, and it is never read into memory."""
    if file.size is not None and file.size > catalog.INPUT_MAX_BYTES:
        raise ValueError(too_big(file.size))
    return file.read()


def check_file(data, name, offer):
    """(facts, errors, warnings) for uploaded bytes checked against a gateway's offer."""
    if not data:
        return None, ["The file is empty."], []
    if len(data) > catalog.INPUT_MAX_BYTES:
        # Not even opened: the size alone rules it out.
        return None, [too_big(len(data))], []
    facts, problem = read_facts(data)
    if facts is None:
        return None, [problem], []
    errors, notes = check_facts(facts, len(data), offer)
    mismatch = name_problem(name, facts.format)
    if mismatch:
        errors.insert(0, mismatch)
    return facts, errors, notes


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
    extension = sorted(EXTENSIONS.get(facts.format, {"bin"}))[0]
    return f"{stem}.{'jpg' if facts.format == 'JPEG' else extension}"


def copy_image(image, user):
    """A new Upload owned by `user` holding a gallery image's original, to use as a reference."""
    with image.file.open("rb") as handle:
        data = handle.read()
    facts, problem = read_facts(data)
    if facts is None:
        raise ValueError(problem)
    extension = safe_filename("x", facts).rsplit(".", 1)[-1]
    return store(user, data, f"image-{image.job_id}-{image.index + 1}.{extension}", facts)


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
