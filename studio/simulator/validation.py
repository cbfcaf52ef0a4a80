"""Wire-level checks, as the real gateways make them, written from their documentation
(`../shared/providers.md` and the raw pages in `../shared/seeds/`, which sit beside this
repository, not in it) and kept independent of studio.gateways on purpose: the simulator plays
the gateway, and a property test compares the portal's validate() with these checks.

check(gateway, body) either raises Invalid (answered with HTTP 400 in the gateway's own error
envelope) or returns a Plan: what the gateway will make (count, pixel size, inputs, palette…).

Choices where the documentation is silent are marked "simulator's choice" and listed in the
README's simulator section.
"""

import base64
import binascii
import io
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import requests
from PIL import Image, UnidentifiedImageError

PROTOCOLS = {"anyfast": "openai-sync", "apimart": "task-async", "gccai": "task-async", "foxapi": "fox-async"}
GATEWAYS = tuple(PROTOCOLS)

WAN_PRO, WAN = "wan2.7-image-pro", "wan2.7-image"
SEEDREAM = "doubao-seedream-4-5-251128"
FOX_WAN, FOX_WAN_PRO = "wan-2.7-image", "wan-2.7-image-pro"
MODELS = {
    "openai-sync": (WAN_PRO, WAN, SEEDREAM),
    "task-async": (WAN_PRO, WAN),
    "fox-async": (FOX_WAN, FOX_WAN_PRO),
}

WAN_SYNC_FIELDS = {
    "model",
    "prompt",
    "image",
    "n",
    "size",
    "enable_sequential",
    "thinking_mode",
    "watermark",
    "seed",
    "response_format",
}
SEEDREAM_FIELDS = {
    "model",
    "prompt",
    "image",
    "size",
    "sequential_image_generation",
    "sequential_image_generation_options",
    "stream",
    "response_format",
    "watermark",
}
TASK_ASYNC_FIELDS = {
    "model",
    "prompt",
    "image_urls",
    "n",
    "size",
    "resolution",
    "negative_prompt",
    "watermark",
    "seed",
    "thinking_mode",
    "enable_sequential",
    "bbox_list",
    "color_palette",
}
FOX_FIELDS = {
    "model",
    "prompt",
    "image_urls",
    "num_outputs",
    "image_size",
    "negative_prompt",
    "seed",
    "enable_safety_checker",
    "enable_prompt_expansion",
}

TIER_SIDE = {"1K": 1024, "2K": 2048, "4K": 4096}
RATIOS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")
# Simulator's choice: foxapi does not say what its presets measure; these are the usual meanings.
FOX_PRESETS = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
}
MIN_PIXELS = 768 * 768
SEED_MAX = 2147483647
MAX_INPUT_BYTES = 20 * 1024 * 1024
INPUT_FORMATS = {"JPEG", "PNG", "WEBP", "BMP"}
# Simulator's choice: Seedream in "auto" mode without max_images picks this many.
SEEDREAM_AUTO_IMAGES = 3
BASE_IMAGE_SIDE = 1024  # the stored copy of the last input image, for rendering edits
FETCH_TIMEOUT = 10  # seconds; Ark fails a reference image that takes longer to download

DATA_URI = re.compile(r"^data:(image/[a-zA-Z0-9.+-]+);base64,(.*)$", re.DOTALL)
PIXELS_X = re.compile(r"^(\d+)x(\d+)$")
PIXELS_X_OR_STAR = re.compile(r"^(\d+)[x*](\d+)$")
HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
RATIO = re.compile(r"^(\d{1,3}(?:\.\d{1,2})?)%$")


class Invalid(Exception):
    def __init__(self, message, param="", code="InvalidParameter"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass
class Plan:
    """What an accepted request will make."""

    model: str
    mode: str  # "text-to-image" | "edit"
    n: int
    width: int
    height: int
    seed: int | None = None
    watermark: bool = False
    response_format: str = "url"
    stream: bool = False
    palette: list[tuple[str, float]] | None = None  # [("#C2D1E6", 23.51), …]
    boxes: list[list[list[int]]] = field(default_factory=list)  # one list per input image
    input_sizes: list[list[int]] = field(default_factory=list)  # [[w, h], …]
    base_image: bytes | None = None  # the last input image as a PNG, at most BASE_IMAGE_SIDE a side


def check(gateway, body):
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object")
    protocol = PROTOCOLS[gateway]
    if protocol == "openai-sync":
        return check_openai_sync(body)
    if protocol == "task-async":
        return check_task_async(body)
    return check_fox_async(body)


# --- anyfast (openai-sync) --------------------------------------------------------------


def check_openai_sync(body):
    model = need_model(body, MODELS["openai-sync"])
    if model == SEEDREAM:
        return check_seedream(body)
    reject_unknown(body, WAN_SYNC_FIELDS)
    need_prompt(body, 5000, required=True)
    refs = image_list(body, "image", most=9)
    sequential = opt_bool(body, "enable_sequential", False)
    n = opt_int(body, "n", 12 if sequential else 1, 1, 12 if sequential else 4)
    opt_bool(body, "thinking_mode", True)  # only effective for text-to-image; elsewhere ignored, not refused
    watermark = opt_bool(body, "watermark", False)
    seed = opt_int(body, "seed", None, 0, SEED_MAX)
    response_format = opt_choice(body, "response_format", "url", ("url", "b64_json"))
    mode = "edit" if refs else "text-to-image"
    tiers, max_pixels = wan_limits(model, mode, sequential)

    size = opt_str(body, "size", "2K")
    inputs = load_images(refs, "image", allow_data=True, forbid_transparency=True)
    if size in TIER_SIDE:
        need_tier(size, tiers, "size")
        width, height = tier_size(size, follow=inputs[-1].size if inputs else None)
    else:
        match = PIXELS_X.match(size)
        if not match:
            raise Invalid(f"size must be 1K, 2K, 4K or {{W}}x{{H}}, not {size!r}", "size")
        width, height = int(match[1]), int(match[2])
        need_pixels(width, height, max_pixels, "size")
    return Plan(
        model=model,
        mode=mode,
        n=n,
        width=width,
        height=height,
        seed=seed,
        watermark=watermark,
        response_format=response_format,
        **input_fields(inputs),
    )


def check_seedream(body):
    reject_unknown(body, SEEDREAM_FIELDS)
    need_prompt(body, None, required=True)
    refs = image_list(body, "image", most=14)
    sequential = opt_choice(body, "sequential_image_generation", "disabled", ("auto", "disabled"))
    options = body.get("sequential_image_generation_options")
    max_images = None
    if options is not None:
        if not isinstance(options, dict):
            raise Invalid(
                "sequential_image_generation_options must be an object", "sequential_image_generation_options"
            )
        reject_unknown(options, {"max_images"}, prefix="sequential_image_generation_options.")
        max_images = opt_int(
            options, "max_images", None, 1, 15, param="sequential_image_generation_options.max_images"
        )
    if sequential == "auto":
        n = max_images or SEEDREAM_AUTO_IMAGES
        if n + len(refs) > 15:
            raise Invalid(
                "reference images plus generated images must not exceed 15",
                "sequential_image_generation_options",
            )
    else:
        n = 1
    stream = opt_bool(body, "stream", False)
    response_format = opt_choice(body, "response_format", "url", ("url", "b64_json"))
    watermark = opt_bool(body, "watermark", True)
    # Seed 001 (anyfast's page) offers only the resolutions 1K, 2K and 4K. The upstream model
    # also takes W×H pixels, but anyfast documents no such size, and its page is the contract.
    size = opt_choice(body, "size", "2K", tuple(TIER_SIDE))
    width, height = tier_size(size)
    inputs = load_images(refs, "image", allow_data=True)
    return Plan(
        model=SEEDREAM,
        mode="edit" if refs else "text-to-image",
        n=n,
        width=width,
        height=height,
        watermark=watermark,
        response_format=response_format,
        stream=stream,
        **input_fields(inputs),
    )


# --- apimart, gccai (task-async) ----------------------------------------------------------


def check_task_async(body):
    model = need_model(body, MODELS["task-async"])
    reject_unknown(body, TASK_ASYNC_FIELDS)
    refs = image_list(body, "image_urls", most=9, must_be_list=True)
    mode = "edit" if refs else "text-to-image"
    need_prompt(body, 5000, required=mode == "text-to-image")
    sequential = opt_bool(body, "enable_sequential", False)
    n = opt_int(body, "n", 1, 1, 12 if sequential else 4)
    opt_bool(body, "thinking_mode", True)  # ignored with images or in sequential mode, not refused
    watermark = opt_bool(body, "watermark", False)
    seed = opt_int(body, "seed", None, 0, SEED_MAX)
    opt_str(body, "negative_prompt", "")
    tiers, max_pixels = wan_limits(model, mode, sequential)

    size = opt_str(body, "size", None)
    resolution = opt_str(body, "resolution", None)
    if resolution is not None and resolution not in TIER_SIDE:
        raise Invalid(f"resolution must be 1K, 2K or 4K, not {resolution!r}", "resolution")
    pixels = None
    if size is None or size in RATIOS:
        tier, ratio = resolution or "2K", size or "1:1"
    elif size in TIER_SIDE:
        if resolution is not None:
            raise Invalid("resolution combines only with an aspect-ratio size, not with a tier", "resolution")
        tier, ratio = size, "1:1"
    else:
        match = PIXELS_X_OR_STAR.match(size)
        if not match:
            raise Invalid(
                f"size must be 1K/2K/4K, an aspect ratio ({', '.join(RATIOS)}) or WxH pixels, not {size!r}",
                "size",
            )
        if resolution is not None:
            raise Invalid("resolution combines only with an aspect-ratio size, not with pixels", "resolution")
        pixels = int(match[1]), int(match[2])
        need_pixels(*pixels, max_pixels, "size")
    if pixels is None:
        need_tier(tier, tiers, "resolution" if resolution else "size")

    inputs = load_images(refs, "image_urls", allow_data=True)
    boxes = check_bbox_list(body.get("bbox_list"), inputs)
    palette = check_palette(body.get("color_palette"), sequential)

    if inputs:
        # Editing: the output takes the last image's aspect ratio at the asked size's area.
        side = math.sqrt(pixels[0] * pixels[1]) if pixels else TIER_SIDE[tier]
        width, height = aspect_size(side, *inputs[-1].size)
    elif pixels:
        width, height = pixels
    else:
        width, height = aspect_size(TIER_SIDE[tier], *map(int, ratio.split(":")))
    return Plan(
        model=model,
        mode=mode,
        n=n,
        width=width,
        height=height,
        seed=seed,
        watermark=watermark,
        palette=palette,
        **input_fields(inputs, boxes),
    )


def check_bbox_list(value, inputs):
    if value is None:
        return []
    if not inputs:
        raise Invalid("bbox_list needs image_urls", "bbox_list")
    if not isinstance(value, list) or len(value) != len(inputs):
        raise Invalid(
            f"bbox_list must be a list with one entry per image_urls entry ({len(inputs)})", "bbox_list"
        )
    for number, (boxes, image) in enumerate(zip(value, inputs, strict=True), start=1):
        if not isinstance(boxes, list):
            raise Invalid(f"bbox_list entry {number} must be a list of boxes ([] for none)", "bbox_list")
        if len(boxes) > 2:
            raise Invalid(
                f"bbox_list entry {number} has {len(boxes)} boxes; at most 2 per image", "bbox_list"
            )
        width, height = image.size
        for box in boxes:
            if not (isinstance(box, list) and len(box) == 4 and all(is_int(c) for c in box)):
                raise Invalid(
                    f"bbox_list entry {number}: a box is [x1, y1, x2, y2] in whole pixels", "bbox_list"
                )
            x1, y1, x2, y2 = box
            if not (0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height):
                raise Invalid(
                    f"bbox_list entry {number}: box {box} is not inside image {number} ({width}x{height})",
                    "bbox_list",
                )
    return value


def check_palette(value, sequential):
    if value is None:
        return None
    if sequential:
        raise Invalid("color_palette is not available with enable_sequential", "color_palette")
    if not isinstance(value, list) or not 3 <= len(value) <= 10:
        raise Invalid("color_palette must have 3 to 10 entries", "color_palette")
    total = Decimal(0)
    palette = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"hex", "ratio"}:
            raise Invalid(
                'each color_palette entry is {"hex": "#RRGGBB", "ratio": "NN.NN%"}', "color_palette"
            )
        hex_, ratio = entry["hex"], entry["ratio"]
        if not isinstance(hex_, str) or not HEX.match(hex_):
            raise Invalid(f"color_palette hex must look like #C2D1E6, not {hex_!r}", "color_palette")
        match = RATIO.match(ratio) if isinstance(ratio, str) else None
        if not match:
            raise Invalid(f"color_palette ratio must look like 23.51%, not {ratio!r}", "color_palette")
        try:
            amount = Decimal(match[1])
        except InvalidOperation:
            raise Invalid(f"color_palette ratio {ratio!r} is not a number", "color_palette") from None
        if not 0 < amount <= 100:
            raise Invalid(f"color_palette ratio {ratio!r} must be above 0% and at most 100%", "color_palette")
        total += amount
        palette.append((hex_.upper(), float(amount)))
    if total != Decimal(100):
        raise Invalid(f"color_palette ratios must sum to exactly 100.00%, not {total}%", "color_palette")
    return palette


# --- foxapi (fox-async) -----------------------------------------------------------------


def check_fox_async(body):
    if body.get("model") is None:
        body = {**body, "model": FOX_WAN}  # documented default
    model = need_model(body, MODELS["fox-async"])
    reject_unknown(body, FOX_FIELDS)
    need_prompt(body, 2000, required=True)
    refs = image_list(body, "image_urls", most=4, must_be_list=True)
    mode = "edit" if refs else "text-to-image"
    n = opt_int(body, "num_outputs", 1, 1, 4 if refs else 5)
    negative = opt_str(body, "negative_prompt", "")
    if len(negative) > 500:
        raise Invalid("negative_prompt must be at most 500 characters", "negative_prompt")
    seed = opt_int(body, "seed", None, 0, SEED_MAX)
    opt_bool(body, "enable_safety_checker", None)
    if opt_bool(body, "enable_prompt_expansion", None) is not None and not refs:
        raise Invalid(
            "enable_prompt_expansion is only available in image editing mode", "enable_prompt_expansion"
        )

    image_size = body.get("image_size")
    if image_size is None:
        image_size = "square_hd"
    if isinstance(image_size, str):
        if image_size not in FOX_PRESETS:
            raise Invalid(
                f"image_size must be one of {', '.join(FOX_PRESETS)} or {{width, height}}", "image_size"
            )
        width, height = FOX_PRESETS[image_size]
    elif isinstance(image_size, dict):
        if set(image_size) != {"width", "height"} or not all(is_int(v) for v in image_size.values()):
            raise Invalid('image_size as an object is {"width": int, "height": int}', "image_size")
        width, height = image_size["width"], image_size["height"]
        # Simulator's choice: foxapi documents no range for explicit sizes; Wan's own apply.
        need_pixels(width, height, wan_limits(model, mode, False)[1], "image_size")
    else:
        raise Invalid("image_size must be a preset name or {width, height}", "image_size")
    for ref in refs:
        if not ref.startswith(("http://", "https://")):
            raise Invalid("image_urls must be publicly accessible http(s) URLs", "image_urls")
    inputs = load_images(refs, "image_urls", allow_data=False)
    return Plan(model=model, mode=mode, n=n, width=width, height=height, seed=seed, **input_fields(inputs))


# --- shared pieces ------------------------------------------------------------------------


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def need_model(body, allowed):
    model = body.get("model")
    if model is None or model == "":
        raise Invalid("model is required", "model")
    if model not in allowed:
        raise Invalid(f"model {model!r} is not available here; use one of {', '.join(allowed)}", "model")
    return model


def reject_unknown(body, allowed, prefix=""):
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Invalid(f"Unknown parameter: {prefix}{unknown[0]}", prefix + unknown[0], "unknown_parameter")


def need_prompt(body, most, required):
    prompt = body.get("prompt")
    if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
        if required:
            raise Invalid("prompt is required", "prompt")
        return ""
    if not isinstance(prompt, str):
        raise Invalid("prompt must be a string", "prompt")
    if most is not None and len(prompt) > most:
        raise Invalid(f"prompt must be at most {most} characters, not {len(prompt)}", "prompt")
    return prompt


def opt_bool(body, name, default):
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Invalid(f"{name} must be true or false", name)
    return value


def opt_int(body, name, default, lo, hi, param=None):
    value = body.get(name)
    if value is None:
        return default
    if not is_int(value) or not lo <= value <= hi:
        raise Invalid(f"{param or name} must be a whole number from {lo} to {hi}", param or name)
    return value


def opt_str(body, name, default):
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise Invalid(f"{name} must be a string", name)
    return value


def opt_choice(body, name, default, choices):
    value = opt_str(body, name, default)
    if value not in choices:
        raise Invalid(f"{name} must be one of {', '.join(choices)}, not {value!r}", name)
    return value


def image_list(body, name, most, must_be_list=False):
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str) and not must_be_list:
        value = [value]  # anyfast's `image` is documented as a string; a list of them is taken too
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Invalid(
            f"{name} must be {'an array of' if must_be_list else 'a string or an array of'} image URLs", name
        )
    if not 1 <= len(value) <= most:
        raise Invalid(f"{name} takes 1 to {most} images, not {len(value)}", name)
    return value


def wan_limits(model, mode, sequential):
    """(tiers, most pixels) for a Wan 2.7 scenario: only pro text-to-image without sequential
    mode goes to 4K; everything else stops at 2K."""
    if "pro" in model and mode == "text-to-image" and not sequential:
        return ("1K", "2K", "4K"), 4096 * 4096
    return ("1K", "2K"), 2048 * 2048


def need_tier(tier, tiers, param):
    if tier not in tiers:
        raise Invalid(
            f"{param}: {tier} is not available for this model and mode (only pro text-to-image"
            f" without sequential mode reaches 4K); use {' or '.join(tiers)}",
            param,
        )


def need_pixels(width, height, max_pixels, param):
    if width <= 0 or height <= 0:
        raise Invalid(f"{param}: width and height must be positive", param)
    if not MIN_PIXELS <= width * height <= max_pixels:
        side = int(math.sqrt(max_pixels))
        raise Invalid(
            f"{param}: total pixels must be between 768x768 and {side}x{side}, not {width}x{height}", param
        )
    if max(width, height) > 8 * min(width, height):
        raise Invalid(f"{param}: aspect ratio must be between 1:8 and 8:1, not {width}x{height}", param)


def tier_size(tier, follow=None):
    side = TIER_SIDE[tier]
    if follow is None:
        return side, side
    return aspect_size(side, *follow)


def aspect_size(side, aspect_w, aspect_h):
    """About side² pixels in the given aspect ratio, each side a multiple of 16 (rounded down,
    so the area never exceeds the tier's)."""
    ratio = aspect_w / aspect_h
    width = max(16, int(side * math.sqrt(ratio)) // 16 * 16)
    height = max(16, int(side / math.sqrt(ratio)) // 16 * 16)
    return width, height


def load_images(refs, param, allow_data, forbid_transparency=False):
    images = []
    for number, ref in enumerate(refs, start=1):
        data = read_image_ref(ref, param, number, allow_data)
        if len(data) > MAX_INPUT_BYTES:
            raise Invalid(f"image {number} is larger than 20 MB", param)
        try:
            image = Image.open(io.BytesIO(data))
        except (UnidentifiedImageError, OSError):
            raise Invalid(f"image {number} is not a readable image", param) from None
        if image.format not in INPUT_FORMATS:
            raise Invalid(f"image {number} is {image.format}; use JPEG, PNG, WEBP or BMP", param)
        width, height = image.size
        if not (240 <= width <= 8000 and 240 <= height <= 8000):
            raise Invalid(f"image {number} is {width}x{height}; each side must be 240 to 8000 pixels", param)
        if max(width, height) > 8 * min(width, height):
            raise Invalid(f"image {number} is {width}x{height}; aspect ratio must be 1:8 to 8:1", param)
        if forbid_transparency and image.format == "PNG" and has_transparency(image):
            raise Invalid(f"image {number} is a PNG with transparency, which is not supported", param)
        images.append(image)
    return images


def read_image_ref(ref, param, number, allow_data):
    match = DATA_URI.match(ref)
    if match:
        if not allow_data:
            raise Invalid(f"image {number} must be an http(s) URL", param)
        try:
            return base64.b64decode(match[2], validate=True)
        except (binascii.Error, ValueError):
            raise Invalid(f"image {number} is not valid base64", param) from None
    if not ref.startswith(("http://", "https://")):
        raise Invalid(f"image {number} must be an http(s) URL or a data:image/…;base64 URI", param)
    try:
        response = requests.get(ref, timeout=FETCH_TIMEOUT)
    except requests.RequestException as exc:
        raise Invalid(f"image {number} could not be downloaded: {exc.__class__.__name__}", param) from None
    if response.status_code != 200:
        raise Invalid(f"image {number} could not be downloaded: HTTP {response.status_code}", param)
    return response.content


def has_transparency(image):
    if "transparency" in image.info:
        return True
    if image.mode in ("RGBA", "LA", "PA"):
        return image.getchannel("A").getextrema()[0] < 255
    return False


def input_fields(inputs, boxes=None):
    if not inputs:
        return {}
    last = inputs[-1].convert("RGB")
    last.thumbnail((BASE_IMAGE_SIDE, BASE_IMAGE_SIDE))
    buffer = io.BytesIO()
    last.save(buffer, "PNG", compress_level=1)
    return {
        "boxes": boxes or [],
        "input_sizes": [list(image.size) for image in inputs],
        "base_image": buffer.getvalue(),
    }
