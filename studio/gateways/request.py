"""A generation request as the portal describes it, its input images, and its validation.

validate() turns every rule of the gateways' documentation into a check with a message a
person can act on. All limits come from the catalog; this module only knows how to compare.
"""

import re
from dataclasses import asdict, dataclass, fields
from decimal import Decimal, InvalidOperation

from studio.gateways import catalog
from studio.gateways.errors import REJECTED, GatewayError


@dataclass
class InputImage:
    """An input image as an adapter sends it. media.prepare_input fills data_uri (or problem) for
    the job's offer, so an adapter only puts it on the wire and never opens the bytes."""

    data: bytes  # the stored upload's bytes (validate reads their size)
    mime: str  # "image/png", ...
    width: int
    height: int
    url: str | None = None  # short-lived public URL (foxapi only takes URLs)
    data_uri: str | None = None  # `data:{mime};base64,...`, converted as the gateway needs it
    problem: str = ""  # why no data_uri could be made, in plain words


@dataclass
class ImageRequest:
    gateway: str  # "anyfast" | "apimart" | "gccai" | "foxapi"
    model: str  # portal model key: "wan2.7-image-pro", "wan2.7-image", "doubao-seedream-4-5-251128"
    mode: str  # "text-to-image" | "edit" | "reference" | "region-edit" | "storyboard"
    prompt: str = ""
    negative_prompt: str = ""
    n: int = 1
    size_tier: str | None = None  # "1K" | "2K" | "4K"
    aspect: str | None = None  # "1:1", "16:9", ... (with a tier)
    width: int | None = None  # exact W×H instead of tier+aspect
    height: int | None = None
    seed: int | None = None
    # None means "not set": the gateway's default applies and nothing is sent. The form must
    # send None, not False, for an option the person didn't touch: a set option the gateway or
    # mode lacks is an error, never silently dropped.
    watermark: bool | None = None
    thinking_mode: bool | None = None
    palette: list[dict] | None = None  # [{"hex": "#C2D1E6", "ratio": "23.51%"}, ...]
    boxes: list[list[list[int]]] | None = None  # one list per input image
    safety_checker: bool | None = None
    prompt_expansion: bool | None = None
    response_format: str = "url"

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        known = {found.name for found in fields(cls)}
        return cls(**{key: value for key, value in d.items() if key in known})

    def pixel_size(self):
        """(width, height) of the output as asked, or None when left to the gateway."""
        if self.width and self.height:
            return self.width, self.height
        if self.size_tier in catalog.TIER_SIDES:
            return catalog.pixel_size(self.size_tier, self.aspect)
        return None


def copy_set_options(body, request, wire_names):
    """Put each option the person set (not None, not empty) into a wire body under the name the
    protocol uses: {ImageRequest field: wire field}. What was left unset is not sent at all, so
    the gateway's own default applies."""
    for field, wire in wire_names.items():
        value = getattr(request, field)
        if value is not None and value != "":
            body[wire] = value


# --- Validation -------------------------------------------------------------------------------

HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
RATIO = re.compile(r"^\d{1,3}(\.\d{1,2})?%$")
HUNDRED = Decimal("100.00")


def validate(request, inputs):
    """Check a request against its gateway's documented limits.

    `inputs` are InputImage objects or dicts with width, height, mime (and optionally the byte
    size, as size or bytes). Returns {field: [messages]}; {} means valid. Field names are the
    create form's.
    """
    errors = {}

    def add(field, message):
        errors.setdefault(field, []).append(message)

    gateway = catalog.GATEWAYS.get(request.gateway)
    if gateway is None:
        add("gateway", f"There is no gateway called {request.gateway!r}.")
        return errors
    offer = catalog.offer(request.gateway, request.model)
    if offer is None:
        names = ", ".join(found.model for found in catalog.offers_for(request.gateway))
        add("model", f"{request.gateway} does not offer {request.model!r}; it offers {names}.")
        return errors
    limits = offer.limits(request.mode)
    if limits is None:
        if request.mode not in catalog.MODES:
            add("mode", f"There is no mode called {request.mode!r}.")
        else:
            offered = ", ".join(catalog.MODES[mode].phrase for mode in offer.mode_keys)
            add(
                "mode",
                f"{request.model} on {request.gateway} has no {catalog.MODES[request.mode].phrase} mode; "
                f"it offers {offered}.",
            )
        return errors

    images = [image_facts(found) for found in inputs]
    check_prompt(request, offer, images, add)
    check_options(request, offer, limits, add)
    check_n(request, offer, limits, images, add)
    check_size(request, offer, limits, add)
    check_seed(request, add)
    check_palette(request, offer, limits, add)
    check_images(request, offer, limits, images, add)
    check_boxes(request, limits, images, add)
    return errors


def image_facts(found):
    """width, height, mime and byte size of an input, whether InputImage or dict."""
    if isinstance(found, InputImage):
        return {
            "width": found.width,
            "height": found.height,
            "mime": found.mime,
            "size": len(found.data or b""),
        }
    return {
        "width": found.get("width"),
        "height": found.get("height"),
        "mime": found.get("mime", ""),
        # media.input_meta() names the byte size "bytes"
        "size": found.get("size") or found.get("bytes") or len(found.get("data") or b""),
    }


def check_prompt(request, offer, images, add):
    prompt = (request.prompt or "").strip()
    if not prompt and not (offer.prompt_optional_with_images and images):
        add("prompt", "Write a prompt.")
    if len(request.prompt or "") > offer.prompt_max:
        add(
            "prompt",
            f"The prompt is {len(request.prompt)} characters; {request.gateway} accepts at most "
            f"{offer.prompt_max}.",
        )
    negative = request.negative_prompt or ""
    if negative and offer.negative_prompt_max and len(negative) > offer.negative_prompt_max:
        add(
            "negative_prompt",
            f"The negative prompt is {len(negative)} characters; {request.gateway} "
            f"accepts at most {offer.negative_prompt_max}.",
        )


def options_set(request):
    """The options this request sets, with the form field each belongs to."""
    chosen = {
        catalog.NEGATIVE_PROMPT: bool(request.negative_prompt),
        catalog.SEED: request.seed is not None,
        catalog.WATERMARK: request.watermark is not None,
        catalog.THINKING_MODE: request.thinking_mode is not None,
        catalog.PALETTE: bool(request.palette),
        catalog.BOXES: any(request.boxes or []),
        catalog.SAFETY_CHECKER: request.safety_checker is not None,
        catalog.PROMPT_EXPANSION: request.prompt_expansion is not None,
        catalog.B64_JSON: request.response_format == "b64_json",
    }
    return [option for option, is_set in chosen.items() if is_set]


def option_field(option):
    return "response_format" if option == catalog.B64_JSON else option


SWITCHES = (catalog.WATERMARK, catalog.THINKING_MODE, catalog.SAFETY_CHECKER, catalog.PROMPT_EXPANSION)


def check_options(request, offer, limits, add):
    if request.response_format not in ("url", "b64_json"):
        add("response_format", f'Results come as "url" or "b64_json", not {request.response_format!r}.')
    for option in SWITCHES:
        value = getattr(request, option)
        if value is not None and not isinstance(value, bool):
            label = catalog.OPTION_LABELS[option]
            add(option, f"Choose on, off or the gateway's default for {label}, not {value!r}.")
    for option in options_set(request):
        if option in limits.options:
            continue
        label = catalog.OPTION_LABELS[option]
        elsewhere = offer.modes_with(option)
        if elsewhere:
            modes = ", ".join(catalog.MODES[mode].phrase for mode in elsewhere)
            message = f"{label[0].upper()}{label[1:]} can't be used in {limits.label} mode, only in {modes}."
        else:
            message = f"{request.gateway} does not support {label} for {request.model}."
        add(option_field(option), message)


def check_n(request, offer, limits, images, add):
    n = request.n
    if isinstance(n, bool) or not isinstance(n, int):
        add("n", "The number of images must be a whole number.")
        return
    if not limits.n_min <= n <= limits.n_max:
        if limits.n_min == limits.n_max:
            add(
                "n",
                f"{request.model} makes exactly {limits.n_min} image per request in {limits.label} mode; "
                f"use storyboard mode for a series.",
            )
        else:
            add(
                "n",
                f"{limits.label.capitalize()} on {request.gateway} makes {limits.n_min}–{limits.n_max} "
                f"images per request, not {n}.",
            )
    if offer.max_total_images and len(images) + n > offer.max_total_images:
        add(
            "n",
            f"{offer.display_name} handles at most {offer.max_total_images} images per request, "
            f"input images included; this asks for {n} plus {len(images)} input.",
        )


def check_size(request, offer, limits, add):
    tier, aspect = request.size_tier, request.aspect
    width, height = request.width, request.height
    exact = width is not None or height is not None
    if exact and tier:
        add("size", "Choose either a size tier or an exact width × height, not both.")
        return
    if exact:
        check_exact_size(request, offer, limits, add)
        return
    if aspect and not tier:
        add("size", "Choose a size tier (1K, 2K or 4K) to go with the aspect ratio.")
        return
    if not tier:
        return  # the gateway's default size
    if tier not in catalog.TIERS:
        add("size", f"{tier!r} is not a size tier; choose 1K, 2K or 4K.")
        return
    if tier not in limits.tiers:
        add("size", tier_message(tier, offer, limits))
        return
    if aspect:
        if aspect not in catalog.ASPECTS:
            add(
                "size",
                f"{aspect!r} is not an aspect ratio on offer; choose one of {', '.join(catalog.ASPECTS)}.",
            )
            return
        if not limits.aspects:
            add("size", f"{limits.aspect_note}.")
            return
        if aspect not in limits.aspects:
            add("size", f"{limits.label.capitalize()} on {request.gateway} does not offer {aspect}.")
            return
    width, height = catalog.pixel_size(tier, aspect)
    check_pixels(width, height, offer, limits, add)


def tier_message(tier, offer, limits):
    same_model = [mode for mode in offer.mode_keys if tier in offer.limits(mode).tiers]
    if same_model:
        modes = ", ".join(catalog.MODES[mode].phrase for mode in same_model)
        return f"{tier} is only available for {offer.model} {modes}."
    tiers = " or ".join(limits.tiers)
    message = f"{offer.model} on {offer.gateway} offers {tiers}, not {tier}."
    for other in catalog.offers_for(offer.gateway):
        for mode in other.mode_keys:
            if tier in other.limits(mode).tiers:
                return f"{message} {tier} is only available for {other.model} {catalog.MODES[mode].phrase}."
    return message


def check_exact_size(request, offer, limits, add):
    width, height = request.width, request.height
    if not limits.exact_size:
        add(
            "size",
            f"{limits.aspect_note or 'This mode takes only a size tier'}, not an exact width × height.",
        )
        return
    numbers = [value for value in (width, height) if isinstance(value, int) and not isinstance(value, bool)]
    if len(numbers) != 2 or width <= 0 or height <= 0:
        add("size", "Give both width and height as whole numbers of pixels.")
        return
    if max(width, height) > catalog.MAX_ASPECT * min(width, height):
        add("size", f"{width}×{height} is too narrow: the aspect ratio must be between 1:8 and 8:1.")
        return
    check_pixels(width, height, offer, limits, add)


def check_pixels(width, height, offer, limits, add):
    total = width * height
    if limits.min_pixels <= total <= limits.max_pixels:
        return
    low, high = catalog.side_of(limits.min_pixels), catalog.side_of(limits.max_pixels)
    add(
        "size",
        f"{width}×{height} is {total:,} pixels; {offer.model} {limits.label} on {offer.gateway} "
        f"makes {low}×{low} to {high}×{high} ({limits.min_pixels:,}–{limits.max_pixels:,} pixels).",
    )


def check_seed(request, add):
    seed = request.seed
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= catalog.SEED_MAX:
        add("seed", f"The seed must be a whole number from 0 to {catalog.SEED_MAX}.")


def check_palette(request, offer, limits, add):
    palette = request.palette
    if not palette or catalog.PALETTE not in limits.options:
        return  # absent, or already reported by check_options
    count = len(palette)
    if not catalog.PALETTE_MIN_COLOURS <= count <= catalog.PALETTE_MAX_COLOURS:
        add(
            "palette",
            f"A palette needs {catalog.PALETTE_MIN_COLOURS}–{catalog.PALETTE_MAX_COLOURS} colours; "
            f"this one has {count}.",
        )
    total = Decimal("0")
    readable = True
    for number, entry in enumerate(palette, start=1):
        entry = entry if isinstance(entry, dict) else {}
        colour, ratio = entry.get("hex"), entry.get("ratio")
        if not isinstance(colour, str) or not HEX_COLOUR.match(colour):
            add("palette", f"Colour {number}: {colour!r} is not a hex colour like #C2D1E6.")
        if not isinstance(ratio, str) or not RATIO.match(ratio):
            add("palette", f"Colour {number}: the ratio {ratio!r} must be a percentage like 23.51%.")
            readable = False
            continue
        try:
            value = Decimal(ratio[:-1])
        except InvalidOperation:
            readable = False
            continue
        if value <= 0:
            add("palette", f"Colour {number}: the ratio must be more than 0%.")
        total += value
    if readable and total != HUNDRED:
        add(
            "palette",
            f"Palette ratios add up to {total.quantize(Decimal('0.01'))}%, they must add up to 100.00%.",
        )


def plural(count, word):
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def check_images(request, offer, limits, images, add):
    count = len(images)
    if count < limits.min_images:
        if limits.min_images == 1:
            add("images", f"{limits.label.capitalize()} needs an input image.")
        else:
            add("images", f"{limits.label.capitalize()} needs at least {limits.min_images} input images.")
    elif count > limits.max_images:
        if limits.max_images == 0:
            add("images", "Text-to-image takes no input images; choose edit or reference to use images.")
        elif request.mode == catalog.EDIT:
            add("images", "Edit takes exactly one image; choose reference for several.")
        elif request.mode == catalog.REFERENCE:
            add("images", f"{request.gateway} accepts at most {limits.max_images} reference images.")
        else:
            add(
                "images",
                f"{request.gateway} accepts at most {plural(limits.max_images, 'input image')} "
                f"in {limits.label} mode.",
            )
    for number, facts in enumerate(images, start=1):
        width, height = facts["width"], facts["height"]
        mime = facts["mime"] or ""
        if not mime.startswith("image/"):
            add("images", f"Image {number} is not an image ({mime or 'unknown type'}).")
        if not isinstance(width, int) or not isinstance(height, int) or width <= 0 or height <= 0:
            add("images", f"Image {number}: its size could not be read.")
            continue
        subject = f"Image {number}"
        for problem in (sides_problem(subject, width, height), size_problem(subject, facts["size"])):
            if problem:
                add("images", problem)


# One image's sides and bytes against the limits every gateway shares. validate() says
# "Image 2 is …", the upload check (media.check_facts) says "It is …": the subject is theirs,
# the rule is here.


def sides_problem(subject, width, height):
    """Why an image of these sides can't be sent (each side, then the aspect ratio), or ""."""
    low, high = catalog.INPUT_MIN_SIDE, catalog.INPUT_MAX_SIDE
    if not (low <= width <= high and low <= height <= high):
        return f"{subject} is {width}×{height} px; each side must be {low}–{high} px."
    if max(width, height) > catalog.MAX_ASPECT * min(width, height):
        return f"{subject} is {width}×{height} px; its aspect ratio must be between 1:8 and 8:1."
    return ""


def size_problem(subject, size):
    """Why an image of this many bytes can't be sent, or ""."""
    if not size or size <= catalog.INPUT_MAX_BYTES:
        return ""
    return (f"{subject} is {size / (1024 * 1024):.1f} MB; the limit is "
            f"{catalog.INPUT_MAX_BYTES // (1024 * 1024)} MB.")


def check_boxes(request, limits, images, add):
    if catalog.BOXES not in limits.options:
        return  # boxes in another mode were reported by check_options
    boxes = request.boxes or []
    if not any(boxes):
        add("boxes", "Draw at least one box on an input image to mark the region to edit.")
        return
    if len(boxes) != len(images):
        add(
            "boxes",
            f"Give one list of boxes per input image: there are {plural(len(images), 'image')} "
            f"and {plural(len(boxes), 'list')}.",
        )
        return
    for number, (image_boxes, facts) in enumerate(zip(boxes, images, strict=True), start=1):
        if not isinstance(image_boxes, list):
            add("boxes", f"Image {number}: its boxes must be a list.")
            continue
        if len(image_boxes) > catalog.BOXES_PER_IMAGE:
            add(
                "boxes",
                f"Image {number} has {len(image_boxes)} boxes; at most {catalog.BOXES_PER_IMAGE} per image.",
            )
        for box_number, box in enumerate(image_boxes, start=1):
            where = f"Image {number}, box {box_number}"
            if (
                not isinstance(box, list | tuple)
                or len(box) != 4
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in box)
            ):
                add("boxes", f"{where}: a box is four whole numbers [x1, y1, x2, y2].")
                continue
            x1, y1, x2, y2 = box
            if not (x1 < x2 and y1 < y2):
                add("boxes", f"{where}: x1 must be less than x2 and y1 less than y2.")
                continue
            width, height = facts["width"], facts["height"]
            if (
                isinstance(width, int)
                and isinstance(height, int)
                and (x1 < 0 or y1 < 0 or x2 > width or y2 > height)
            ):
                add("boxes", f"{where} reaches outside the {width}×{height} px image.")


# --- Input images on the wire -----------------------------------------------------------------


def data_uris(inputs):
    """The data URIs media.prepare_input made for these inputs. One it could not convert fails
    the job as rejected, before anything is sent."""
    for image in inputs:
        if image.data_uri is None:
            problem = image.problem or f"An input image ({image.mime}) was not prepared to send."
            raise GatewayError(REJECTED, problem)
    return [image.data_uri for image in inputs]
