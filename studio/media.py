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
import contextlib
import dataclasses
import hashlib
import io
import ipaddress
import logging
import os
import queue
import socket
import sys
import threading
import time
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from decimal import ROUND_DOWN, Decimal
from urllib.parse import urljoin

import requests
import urllib3
from django.conf import settings
from django.core import signing
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from PIL import Image as PILImage

from studio.gateways import catalog
from studio.gateways.errors import GatewayError
from studio.gateways.http import gateway_endpoint
from studio.gateways.request import InputImage, sides_problem, size_problem
from studio.models import Image, Job, Upload

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

# Result downloads (guarded): a result URL comes from the gateway's answer and is not trusted.
DOWNLOAD_CHUNK = 16 * 1024  # small, so the total deadline is checked often
MAX_REDIRECTS = 3
REDIRECT_STATUSES = (301, 302, 303, 307, 308)
EXPIRED_STATUSES = (403, 404, 410)
# The only words a person sees for a download that failed or was refused: the real reason is
# logged, as telling refusals, timeouts and closed ports apart would map the portal's network.
DOWNLOAD_FAILED = "could not be downloaded from the gateway's link"
LINK_EXPIRED = "could not be downloaded: the gateway's link has expired"
DOWNLOAD_USER_AGENT = "ImageStudio/0.1 (+self-hosted)"


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


# Only these decoders ever run on bytes from outside: never EPS (Ghostscript), PSD, FITS, ….
READABLE_FORMATS = tuple(MIME_BY_FORMAT)
# One full decode at a time per process: an 8000² RGBA PNG of a few hundred KB decodes to 256 MB,
# and eight such uploads at once would take a web worker past 2 GB.
HEAVY_DECODE = threading.Lock()


def read_facts(data):
    """(Facts, problem): the image's format, size and transparency, or why it can't be used.

    Format and size come from the header. The pixels are decoded once, to prove the data is a
    whole image and to see whether any pixel is transparent: JPEG at an eighth of its size (it
    can have no alpha), the others in full but one at a time (HEAVY_DECODE).
    """

    def load(image):
        if image.format == "JPEG":
            image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
        return image_has_alpha(image)

    try:
        fmt, width, height, has_alpha = decode_checked(data, HEAVY_DECODE, load)
    except NotAnImage as problem:
        return None, str(problem)
    return Facts(fmt, width, height, has_alpha), ""


def decode_checked(data, slots, decode):
    """(format, width, height, decode(image)): the header read and verified first (a size no
    gateway takes is refused before any pixel is decoded), then the image opened again and
    decoded while holding one of `slots`. Raises NotAnImage in plain words."""
    fmt, width, height = header_checked(data)
    return fmt, width, height, decoded(data, slots, decode)


def decoded(data, slots, decode):
    """decode(image) of data whose header_checked() passed, holding one of `slots`."""
    with refused_in_plain_words(), slots, PILImage.open(io.BytesIO(data), formats=READABLE_FORMATS) as image:
        return decode(image)


def header_checked(data):
    """(format, width, height) from the header, and Pillow's verify(): for PNG that checks the
    CRC of every chunk to the end, for the other formats little. Raises NotAnImage."""
    with refused_in_plain_words(), PILImage.open(io.BytesIO(data), formats=READABLE_FORMATS) as image:
        fmt, width, height = image.format, image.width, image.height
        if width * height > MAX_INPUT_PIXELS:
            raise NotAnImage(f"It is {width}×{height} px, far larger than any gateway takes "
                             f"(at most {catalog.INPUT_MAX_SIDE} px a side).")
        image.verify()
    return fmt, width, height


@contextlib.contextmanager
def refused_in_plain_words():
    """Pillow's refusals (a decompression bomb, a broken or unknown file) as NotAnImage."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            yield
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        raise NotAnImage(
            "It decodes to far more pixels than its file size suggests, so it was refused."
        ) from None
    except (OSError, SyntaxError, ValueError):
        raise NotAnImage(f"It is not an image Image Studio can read (use {FORMAT_NAMES}).") from None


def image_has_alpha(image):
    """True when the image has transparent pixels (not merely an alpha channel)."""
    if image.mode in ("RGBA", "LA"):
        # Counted from the histogram, one pass over the pixels with no copy: getextrema() and
        # getchannel() copy a band out first (61 MB for an 8000² image). The alpha band's 256
        # counts come last; any below 255 is a transparent pixel.
        counts = image.histogram()
        return any(counts[-256:-1])
    if image.mode == "PA":
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


def stored_bytes(field):
    """The bytes of a stored file: an upload's or a gallery image's."""
    with field.open("rb") as handle:
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
    data = stored_bytes(image.file)
    facts, problem = read_facts(data)
    if facts is None:
        raise ValueError(problem)
    return store(user, data, f"image-{image.job_id}-{image.index + 1}.{extension(facts.format)}", facts)


def copy_upload(upload, user):
    """A new Upload owned by `user` with the same bytes (a teammate's remix of a shared job)."""
    data = stored_bytes(upload.file)
    facts, problem = read_facts(data)
    if facts is None:
        raise ValueError(problem)
    return store(user, data, upload.original_name, facts)


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
    with HEAVY_DECODE, PILImage.open(io.BytesIO(data), formats=READABLE_FORMATS) as image:
        image.draft("RGB", (256, 256))  # JPEG decodes reduced; others in full, then shrink first
        image.thumbnail((256, 256))
        image = flatten(image)
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
            data=stored_bytes(upload.file),
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
        with HEAVY_DECODE, PILImage.open(io.BytesIO(data), formats=READABLE_FORMATS) as opened:
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


class DownloadFailed(Exception):
    """Why a result URL gave no image, for the log; `retry` when another attempt may work."""

    def __init__(self, reason, retry=False):
        super().__init__(reason)
        self.retry = retry


class LinkExpired(DownloadFailed):
    pass


def plain_address(text):
    """An address as ipaddress sees it; an IPv4-mapped IPv6 one (::ffff:127.0.0.1) as IPv4."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_internal(address):
    return (
        address.is_loopback or address.is_private or address.is_link_local or address.is_multicast
        or address.is_reserved or address.is_unspecified or not address.is_global
    )


def resolve(host, port):
    """Every address `host` resolves to, in the resolver's order. getaddrinfo, not a look at
    the name: it reads numeric spellings (0x7f000001, 2130706433, 0177.0.0.1) as the OS does."""
    found = []
    for info in socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM):
        address = plain_address(info[4][0])
        if address not in found:
            found.append(address)
    return found


def gateway_addresses(gateway):
    """The addresses of the gateway's own base URL: the only internal ones a download may use
    (the simulator and local test gateways live on loopback)."""
    try:
        base = urllib3.util.parse_url(gateway_endpoint(gateway)[0])
        return set(resolve(base.host or "", base.port or 443))
    except (GatewayError, OSError, ValueError) as exc:  # not configured; unresolvable; not a URL
        log.info("gateway %s: its base URL gives no address (%s)", gateway, exc)
        return set()


def fetch(url, allowed=frozenset(), deadline=None):
    """The bytes at a result URL. Redirects are followed by hand, at most MAX_REDIRECTS, each
    hop checked like the first. Raises DownloadFailed."""
    if deadline is None:
        deadline = time.monotonic() + settings.STUDIO_DOWNLOAD_SECONDS
    for _ in range(MAX_REDIRECTS + 1):
        data, location = fetch_hop(url, allowed, deadline)
        if location is None:
            return data
        url = urljoin(url, location)
    raise DownloadFailed(f"more than {MAX_REDIRECTS} redirects")


def fetch_hop(url, allowed, deadline):
    """(bytes, None), or (None, location) for a redirect. Only http(s); the host is resolved
    once and every address it has must be public or in `allowed`."""
    try:
        parts = urllib3.util.parse_url(url if isinstance(url, str) else "")
        if parts.scheme not in ("http", "https") or not parts.host:
            raise DownloadFailed(f"not an http(s) URL: {str(url)[:200]}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = resolve(parts.host, port)
    except (OSError, ValueError) as exc:  # LocationParseError is a ValueError; gaierror an OSError
        raise DownloadFailed(f"{str(url)[:200]}: {exc}", retry=isinstance(exc, OSError)) from None
    refused = [address for address in addresses if is_internal(address) and address not in allowed]
    if refused or not addresses:
        raise DownloadFailed(f"{parts.host} resolves to {refused or 'nothing'}; refused")
    last = None
    for address in addresses:
        try:
            return fetch_from(address, port, parts, deadline)
        except urllib3.exceptions.ConnectTimeoutError as exc:  # refused or silent: the next one
            last = exc
    raise DownloadFailed(f"{parts.host}: could not connect ({last})", retry=True)


def fetch_from(address, port, parts, deadline):
    """One GET sent to the checked `address`, never to a fresh look-up of the name.

    urllib3's HTTPConnection is given the address, with the URL's own Host header, and for
    https the URL's host name for SNI and certificate checks: the simplest way to connect to
    what was checked. One connection per request and no cookie jar: nothing carries over from
    one job's host to another's. A timer shuts the socket at the deadline, so a body (or a
    header) trickling a byte at a time can't keep the worker past it.
    """
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise DownloadFailed(f"not done within {settings.STUDIO_DOWNLOAD_SECONDS} s")
    connect_timeout = min(settings.STUDIO_GATEWAY_CONNECT_TIMEOUT, remaining)
    if parts.scheme == "https":
        connection = urllib3.connection.HTTPSConnection(
            str(address), port, timeout=connect_timeout, server_hostname=parts.host,
            assert_hostname=parts.host, cert_reqs="CERT_REQUIRED", ca_certs=requests.certs.where(),
        )
    else:
        connection = urllib3.connection.HTTPConnection(str(address), port, timeout=connect_timeout)
    cut = threading.Event()
    watchdog = threading.Timer(remaining, cut_off, args=(connection, cut))
    watchdog.daemon = True
    watchdog.start()
    try:
        connection.connect()
        connection.timeout = min(settings.STUDIO_DOWNLOAD_READ_TIMEOUT, remaining)
        connection.request(
            "GET", parts.request_uri, preload_content=False, decode_content=False,
            headers={"Host": parts.netloc, "User-Agent": DOWNLOAD_USER_AGENT, "Accept-Encoding": "identity"},
        )
        response = connection.getresponse()
        if response.status in REDIRECT_STATUSES and response.headers.get("Location"):
            return None, response.headers["Location"]
        if response.status in EXPIRED_STATUSES:
            raise LinkExpired(f"HTTP {response.status}")
        if response.status != 200:
            raise DownloadFailed(f"HTTP {response.status}", retry=response.status >= 500)
        return read_body(response, deadline, cut), None
    except urllib3.exceptions.ConnectTimeoutError:
        raise
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        if cut.is_set():
            raise DownloadFailed(f"not done within {settings.STUDIO_DOWNLOAD_SECONDS} s") from None
        raise DownloadFailed(f"{type(exc).__name__}: {exc}", retry=True) from None
    finally:
        watchdog.cancel()
        connection.close()


def cut_off(connection, cut):
    cut.set()
    sock = connection.sock
    if sock is not None:
        try:
            # socket.socket's own shutdown, under any TLS wrapper: it wakes the blocked read.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


def read_body(response, deadline, cut):
    declared = response.headers.get("Content-Length") or "0"
    if declared.isdigit() and int(declared) > MAX_RESULT_BYTES:
        raise DownloadFailed(f"the image is {declared} bytes, over the {MAX_RESULT_BYTES} limit")
    chunks, size = [], 0
    while chunk := response.read1(DOWNLOAD_CHUNK, decode_content=False):
        size += len(chunk)
        if size > MAX_RESULT_BYTES:
            raise DownloadFailed(f"the image is over the {MAX_RESULT_BYTES} byte limit")
        if time.monotonic() > deadline:
            raise DownloadFailed(f"not done within {settings.STUDIO_DOWNLOAD_SECONDS} s")
        chunks.append(chunk)
    if cut.is_set():  # the watchdog's shutdown reads as the end of the body
        raise DownloadFailed(f"not done within {settings.STUDIO_DOWNLOAD_SECONDS} s")
    return b"".join(chunks)


# Results decode a few at a time in a process (not one, like uploads: HEAVY_DECODE): a job's
# images download side by side, and a result is at most 4096² px.
RESULT_DECODES = threading.BoundedSemaphore(4)


# A PNG carries a CRC on every chunk, and verify() checks them all: that alone proves a result
# whole, so its thumbnail (a full decode, about 30 ms of CPU for 1K) need not hold up the job.
# The other formats prove whole only by decoding, which makes the thumbnail too.
CHECKSUMMED_FORMATS = {"PNG"}


def read_result(data, thumbnail_later=False):
    """(Facts, WebP thumbnail bytes or None) of a gateway's result. The image is proven whole
    first: by decoding it once for the thumbnail, or with `thumbnail_later` and a checksummed
    format by its checksums alone (no thumbnail yet). Raises NotAnImage."""
    fmt, width, height = header_checked(data)
    if thumbnail_later and fmt in CHECKSUMMED_FORMATS:
        return Facts(fmt, width, height, None), None
    thumbnail, has_alpha = decoded(data, RESULT_DECODES, thumbnail_of)
    return Facts(fmt, width, height, has_alpha), thumbnail


def thumbnail_of(image):
    """(WebP bytes at most THUMBNAIL_EDGE a side, whether any pixel is transparent)."""
    image.draft(image.mode, (THUMBNAIL_EDGE, THUMBNAIL_EDGE))  # JPEG: decode at a fraction
    # reducing_gap 1: halve (or third…) by box averaging first, then resample what is left; a
    # 1024² result's thumbnail costs 1 ms instead of 10, with no difference to see at 512 px.
    image.thumbnail((THUMBNAIL_EDGE, THUMBNAIL_EDGE), reducing_gap=1.0)
    if image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    out = io.BytesIO()
    image.save(out, "WEBP", quality=82, method=0)  # the fastest encoder: the lane makes many
    return out.getvalue(), image_has_alpha(image)


def result_bytes(entry, gateway=None):
    """A result's bytes: its incoming file, or its URL downloaded within STUDIO_DOWNLOAD_SECONDS
    in all (every attempt and redirect included). Internal addresses are fetched only when they
    are `gateway`'s own. Raises ValueError in plain words (DOWNLOAD_FAILED or LINK_EXPIRED)."""
    if "incoming" in entry:
        with default_storage.open(entry["incoming"], "rb") as handle:
            return handle.read()
    allowed = gateway_addresses(gateway) if gateway else set()
    deadline = time.monotonic() + settings.STUDIO_DOWNLOAD_SECONDS
    for _ in range(DOWNLOAD_ATTEMPTS):
        try:
            return fetch(entry.get("url"), allowed, deadline)
        except LinkExpired as exc:
            log.info("result %s: %s", entry.get("index"), exc)
            raise ValueError(LINK_EXPIRED) from None
        except DownloadFailed as exc:
            log.warning("result %s: %s", entry.get("index"), exc)
            if not exc.retry or time.monotonic() >= deadline:
                break
    raise ValueError(DOWNLOAD_FAILED)


def store_result(job, entry, data, thumbnail_later=False):
    """Store one result (proven whole, see read_result) as an Image of `job`, with its thumbnail
    unless that was left for later (make_thumbnail). None when this index was stored already."""
    return store_read_result(job, entry, data, *read_result(data, thumbnail_later))


def store_read_result(job, entry, data, facts, thumbnail):
    """store_result() of a result read already (fetch_result). Its row is written in a savepoint
    of its own, so a duplicate index leaves a caller's transaction usable."""
    index = entry["index"]
    # Stored exactly as the gateway sent it: originals are never re-encoded.
    digest = hashlib.sha256(data).hexdigest()
    name = f"{index + 1:02d}-{digest[:12]}.{extension(facts.format)}"
    image = Image(
        job=job,
        owner_id=job.owner_id,
        index=index,
        width=facts.width,
        height=facts.height,
        bytes=len(data),
        sha256=digest,
        mime=facts.mime,
        revised_prompt=entry.get("revised_prompt", ""),
        seed=job.request.get("seed"),
    )
    image.file.save(name, ContentFile(data), save=False)
    if thumbnail is not None:
        image.thumbnail.save(thumbnail_name(image), ContentFile(thumbnail), save=False)
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:
        # Another run of the same download stored this index first; keep theirs.
        delete_image_files(image)
        return None
    return image


def fetch_result(entry, gateway):
    """A result fetched and proven whole, with no database or storage write (it runs on a download
    thread): (data, facts, thumbnail), the thumbnail None for a PNG (left for later, see
    read_result). Raises ValueError (in plain words), NotAnImage or OSError; result_problem()
    says them."""
    data = result_bytes(entry, gateway)
    return (data, *read_result(data, thumbnail_later=True))


def result_problem(job, entry, exc):
    """What went wrong with one result of `job`, in plain words, for the job's message."""
    log.warning("job %s image %s: %s", job.pk, entry["index"], exc)
    if isinstance(exc, ValueError):
        return f"Image {entry['index'] + 1} {exc}"
    return f"Image {entry['index'] + 1} was not a valid image."


def thumbnail_name(image):
    return f"{image.index + 1:02d}.webp"


def download_results(job):
    """Store every result of the job not stored yet, fetching up to STUDIO_DOWNLOAD_PARALLEL at
    once and storing each as it arrives, so a batch's images show one by one. A PNG's thumbnail
    is left to this process's thumbnail thread (thumbnails_later), once the job is final.
    Returns plain-words problems, if any."""
    have = set(job.images.values_list("index", flat=True))
    wanted = [entry for entry in job.results if entry["index"] not in have]
    if not wanted:
        return []
    problems = []
    # The fetches are HTTP alone; storing (database and storage) stays on this thread.
    with ThreadPoolExecutor(min(settings.STUDIO_DOWNLOAD_PARALLEL, len(wanted))) as pool:
        fetches = {pool.submit(result_bytes, entry, job.gateway): entry for entry in wanted}
        for done in as_completed(fetches):
            entry = fetches[done]
            try:
                store_result(job, entry, done.result(), thumbnail_later=True)
            except (ValueError, NotAnImage, OSError) as exc:
                problems.append(result_problem(job, entry, exc))
                continue
            if "incoming" in entry:
                default_storage.delete(entry["incoming"])
    return sorted(problems)


# --- thumbnails made after the job is final ------------------------------------------------

# Each process that downloads has one thumbnail thread, at the lowest CPU priority: in a burst of
# results the downloads (and so the jobs' final status and charge) take the CPU first, and the
# thumbnails use what is left. Until its thumbnail exists an image is shown from its original
# (views.files.serve_thumbnail). A thumbnail lost with its process (recycled or killed) is made
# by the watchdog (jobs.recover → make_thumbnails).
THUMBNAIL_QUEUE = queue.Queue()  # join() waits until every image handed over is done
THUMBNAIL_THREAD_LOCK = threading.Lock()
thumbnail_thread = None


def thumbnails_later(image_ids):
    """Hand stored images (committed) to this process's thumbnail thread."""
    global thumbnail_thread
    for image_id in image_ids:
        THUMBNAIL_QUEUE.put(image_id)
    with THUMBNAIL_THREAD_LOCK:
        # Not alive in a forked child whose parent had started one: start it again.
        if thumbnail_thread is None or not thumbnail_thread.is_alive():
            thumbnail_thread = threading.Thread(target=make_queued_thumbnails, name="thumbnails", daemon=True)
            thumbnail_thread.start()


def make_queued_thumbnails():
    lowest_cpu_priority()
    while True:
        image_id = THUMBNAIL_QUEUE.get()
        try:
            give_way_to_downloads()
            make_thumbnails([image_id])
        except Exception:  # the thread serves the whole process: one bad image must not end it
            log.exception("image %s: the thumbnail could not be made", image_id)
        finally:
            if THUMBNAIL_QUEUE.empty():
                connection.close()  # an idle thread holds no connection
            THUMBNAIL_QUEUE.task_done()


GIVE_WAY_CHECK_SECONDS = 0.2


def give_way_to_downloads():
    """A burst's results are stored before its thumbnails are made: while any job waits for its
    download (in any process; one indexed read), the thumbnail waits too, up to
    STUDIO_THUMBNAIL_GIVE_WAY_SECONDS. Nice 19 alone is not enough: a decode holds this process's
    GIL at times, and the thumbnail's UPDATE SQLite's one write lock, and a thread at nice 19 that
    holds either may wait long for the CPU while every download waits for it."""
    deadline = time.monotonic() + settings.STUDIO_THUMBNAIL_GIVE_WAY_SECONDS
    while time.monotonic() < deadline and Job.objects.filter(status=Job.DOWNLOADING).exists():
        time.sleep(GIVE_WAY_CHECK_SECONDS)


def lowest_cpu_priority():
    """Nice 19 for the calling thread alone (Linux: a thread id is a process id to setpriority).
    Pillow decodes and encodes without the GIL, so the process's other threads go on meanwhile."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except OSError as exc:
            log.warning("the thumbnail thread keeps its CPU priority: %s", exc)


def make_thumbnails(image_ids):
    """Make the missing thumbnails of these images (a second run does nothing)."""
    for image in Image.objects.filter(pk__in=image_ids, thumbnail="").select_related("job"):
        make_thumbnail(image)


def make_thumbnail(image):
    """Decode a stored original once more and save its thumbnail. False when someone else made
    it first, the image is gone, or the original can't be decoded (it is then shown as it is)."""
    try:
        *_, (thumbnail, _) = decode_checked(stored_bytes(image.file), RESULT_DECODES, thumbnail_of)
    except NotAnImage as problem:
        log.warning("image %s: no thumbnail, the original can't be decoded: %s", image.pk, problem)
        return False
    name = default_storage.save(
        image.thumbnail.field.generate_filename(image, thumbnail_name(image)), ContentFile(thumbnail)
    )
    if not Image.objects.filter(pk=image.pk, thumbnail="").update(thumbnail=name):
        default_storage.delete(name)  # made twice, or the image was deleted meanwhile
        return False
    image.thumbnail.name = name
    return True


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


def zip_stream(images, manifest=None, names=None):
    """The images' originals as one uncompressed zip, yielded in chunks as it is written, byte
    for byte as stored. `manifest` (JSON text) goes in first as manifest.json; `names(image)`
    names each entry (the stored file name by default: unique within one job only)."""
    sink = ChunkWriter()
    # No seeking: entries carry data descriptors, so the archive streams as it is written.
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:
        if manifest is not None:
            archive.writestr("manifest.json", manifest.encode())
            yield sink.take()
        for image in images:
            name = names(image) if names else image.file.name.rsplit("/", 1)[-1]
            info = zipfile.ZipInfo(name, date_time=image.created.timetuple()[:6])
            with archive.open(info, "w", force_zip64=True) as entry, image.file.open("rb") as handle:
                while chunk := handle.read(256 * 1024):
                    entry.write(chunk)
                    yield sink.take()
            yield sink.take()
    yield sink.take()
