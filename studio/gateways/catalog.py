"""What each gateway offers: its models, the modes each model supports, every limit and price.

This is the only place a gateway limit is written down. The create form, validation
(request.validate), the adapters and pricing (ledger.unit_price) all read it, so a limit
changes here and nowhere else.

Sources: `../shared/providers.md` (beside this repository, not in it) and the raw pages it was built from
(seeds 000 anyfast Wan, 001 anyfast Seedream, 002 apimart, 003 gccai, 004 foxapi). Where the
two disagree the raw page wins. Where a gateway documents nothing we choose the conservative
value and say so in a comment next to it.
"""

import math
from dataclasses import dataclass
from decimal import Decimal

# --- Wire protocols ---------------------------------------------------------------------------
OPENAI_SYNC = "openai-sync"
TASK_ASYNC = "task-async"
FOX_ASYNC = "fox-async"


@dataclass(frozen=True)
class Gateway:
    key: str
    display_name: str
    protocol: str
    is_async: bool


GATEWAYS = {
    "anyfast": Gateway("anyfast", "AnyFast", OPENAI_SYNC, is_async=False),
    "apimart": Gateway("apimart", "APIMart", TASK_ASYNC, is_async=True),
    "gccai": Gateway("gccai", "GCCAI", TASK_ASYNC, is_async=True),
    "foxapi": Gateway("foxapi", "FoxAPI", FOX_ASYNC, is_async=True),
}

# --- Modes ------------------------------------------------------------------------------------
TEXT_TO_IMAGE = "text-to-image"
EDIT = "edit"  # one input image
REFERENCE = "reference"  # several input images ("image 1", "image 2" in the prompt)
REGION_EDIT = "region-edit"  # input images with boxes marking the regions to change
STORYBOARD = "storyboard"  # sequential generation: a coherent series, n is a maximum



@dataclass(frozen=True)
class Mode:
    """One wording per mode, everywhere: tabs, cards, filters and messages."""

    title: str  # on its own: "Edit an image"
    phrase: str  # inside a sentence: "… has no edit mode"
    hint: str  # what to do, under the mode tabs


MODES = {
    TEXT_TO_IMAGE: Mode("Text to image", "text-to-image", "Describe the picture you want."),
    EDIT: Mode("Edit an image", "edit", "Add one image and describe the change you want."),
    REFERENCE: Mode(
        "Combine references",
        "reference",
        "Add two or more images and refer to them as “image 1”, “image 2” in the prompt.",
    ),
    REGION_EDIT: Mode(
        "Region edit", "region edit", "Add images, then drag on them to box the areas to change."
    ),
    STORYBOARD: Mode(
        "Storyboard",
        "storyboard",
        "A coherent series of images; the model decides how many, up to the number you set.",
    ),
}

# --- Sizes ------------------------------------------------------------------------------------
# A tier is a pixel budget: "2K" means about 2048×2048 pixels in total, whatever the aspect.
TIER_SIDES = {"1K": 1024, "2K": 2048, "4K": 4096}
TIERS = tuple(TIER_SIDES)
ASPECTS = ("1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3")
# Sides computed from a tier are rounded down to a multiple of this, so the total stays within
# the tier's budget and the numbers are ones image models are comfortable with.
PIXEL_STEP = 16
# Widest allowed aspect, for outputs and inputs alike (1:8 to 8:1 on every gateway).
MAX_ASPECT = 8

MIN_PIXELS = 768 * 768
MAX_PIXELS_2K = 2048 * 2048
MAX_PIXELS_4K = 4096 * 4096
# 1K or 2K with any aspect, or an exact W×H, up to 2048² pixels: what most Wan modes take.
SIZES_2K = dict(
    tiers=("1K", "2K"), aspects=ASPECTS, exact_size=True, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS_2K
)

# --- Options ----------------------------------------------------------------------------------
# Named after the ImageRequest fields (and the create form's fields) they switch on.
NEGATIVE_PROMPT = "negative_prompt"
SEED = "seed"
WATERMARK = "watermark"
THINKING_MODE = "thinking_mode"
PALETTE = "palette"
BOXES = "boxes"
SAFETY_CHECKER = "safety_checker"
PROMPT_EXPANSION = "prompt_expansion"
B64_JSON = "b64_json"  # response_format "b64_json" instead of "url"

OPTION_LABELS = {
    NEGATIVE_PROMPT: "a negative prompt",
    SEED: "a seed",
    WATERMARK: "the watermark setting",
    THINKING_MODE: "thinking mode",
    PALETTE: "a colour palette",
    BOXES: "region boxes",
    SAFETY_CHECKER: "the safety checker setting",
    PROMPT_EXPANSION: "prompt expansion",
    B64_JSON: "base64 results",
}

SEED_MAX = 2147483647
PALETTE_MIN_COLOURS = 3
PALETTE_MAX_COLOURS = 10
BOXES_PER_IMAGE = 2

# --- Input images -----------------------------------------------------------------------------
# The same on every gateway (foxapi documents none; it runs the same Wan 2.7 model upstream).
INPUT_MIN_SIDE = 240
INPUT_MAX_SIDE = 8000
INPUT_MAX_BYTES = 20 * 1024 * 1024
# Formats sent as they are; anything else is re-encoded before sending (media.as_data_uri).
WAN_INPUT_FORMATS = ("image/jpeg", "image/png", "image/bmp", "image/webp")


@dataclass(frozen=True)
class ModeLimits:
    mode: str
    n_min: int
    n_max: int
    min_images: int
    max_images: int
    tiers: tuple[str, ...]
    # Aspects allowed with a tier; empty means "a tier only" and aspect_note says why.
    aspects: tuple[str, ...]
    exact_size: bool  # whether an exact width × height may be asked for
    min_pixels: int  # total pixels of the output
    max_pixels: int
    options: frozenset[str]
    aspect_note: str = ""

    @property
    def label(self):
        return MODES[self.mode].phrase


@dataclass(frozen=True)
class Offer:
    gateway: str
    model: str  # the portal's key, the one jobs and prices store
    display_name: str
    protocol: str
    upstream_model: str  # what goes in the wire body's "model"
    documented_price: Decimal | None  # CNY per image made; None = the gateway publishes none
    modes: tuple[ModeLimits, ...]
    prompt_max: int
    prompt_optional_with_images: bool
    negative_prompt_max: int | None  # None = no documented limit
    watermark_default: bool | None  # None = no watermark option
    input_formats: tuple[str, ...]
    input_transparency: bool  # False: transparent pixels are flattened onto white before sending
    input_urls_only: bool  # True: the gateway fetches inputs from public URLs, takes no bytes
    max_total_images: int | None = None  # inputs + outputs of one request, where capped

    def limits(self, mode):
        """The ModeLimits for a mode, or None when this model can't do it here."""
        for limits in self.modes:
            if limits.mode == mode:
                return limits
        return None

    @property
    def mode_keys(self):
        return [limits.mode for limits in self.modes]

    def supports(self, option, mode=None):
        """Whether an option applies in a mode (in any mode when mode is None)."""
        if mode is None:
            return any(option in limits.options for limits in self.modes)
        limits = self.limits(mode)
        return limits is not None and option in limits.options

    def modes_with(self, option):
        return [limits.mode for limits in self.modes if option in limits.options]

    @property
    def gateway_display_name(self):
        return GATEWAYS[self.gateway].display_name

    @property
    def is_async(self):
        return GATEWAYS[self.gateway].is_async


def pixel_size(tier, aspect=None):
    """The output's width and height for a tier and an aspect ratio.

    The one place this arithmetic lives: adapters send its answer where a gateway needs pixels
    (anyfast W×H, foxapi {width, height}) and the form shows it as "the resulting size".
    The tier fixes the pixel budget (1K = 1024², 2K = 2048², 4K = 4096²); the aspect shares it
    out. 1:1 gives the tier's square exactly.
    """
    side = TIER_SIDES[tier]
    if aspect is None or aspect == "1:1":
        return side, side
    across, down = parse_aspect(aspect)
    area = side * side
    width = math.isqrt(area * across // down) // PIXEL_STEP * PIXEL_STEP
    height = math.isqrt(area * down // across) // PIXEL_STEP * PIXEL_STEP
    return width, height


def parse_aspect(aspect):
    across, down = aspect.split(":")
    return int(across), int(down)


def side_of(pixels):
    """768 for 589,824: how the documentation writes pixel totals (768×768)."""
    return math.isqrt(pixels)


# --- The offers -------------------------------------------------------------------------------
# Written out per gateway family rather than generated, so each documented limit can be
# checked against its page by reading.

WAN_ASPECT_FOLLOWS_INPUT = (
    "The output takes the aspect of the last input image in this mode, so choose only a size tier"
)
SEEDREAM_ASPECT = "Seedream on anyfast takes only a size tier (1K, 2K or 4K); the model picks the aspect"


def anyfast_wan(model, display_name, pro):
    # Seed 000. Presets 1K/2K/4K are squares; any other aspect goes as {W}x{H} pixels.
    # 4K and pixel totals above 2048² are for wan2.7-image-pro text-to-image only.
    common = frozenset({SEED, WATERMARK, B64_JSON})
    return Offer(
        gateway="anyfast",
        model=model,
        display_name=display_name,
        protocol=OPENAI_SYNC,
        upstream_model=model,
        documented_price=None,  # anyfast publishes no per-image price
        modes=(
            ModeLimits(
                TEXT_TO_IMAGE,
                n_min=1,
                n_max=4,
                min_images=0,
                max_images=0,
                tiers=("1K", "2K", "4K") if pro else ("1K", "2K"),
                aspects=ASPECTS,
                exact_size=True,
                min_pixels=MIN_PIXELS,
                max_pixels=MAX_PIXELS_4K if pro else MAX_PIXELS_2K,
                options=common | {THINKING_MODE},
            ),
            ModeLimits(EDIT, n_min=1, n_max=4, min_images=1, max_images=1, options=common, **SIZES_2K),
            ModeLimits(REFERENCE, n_min=1, n_max=4, min_images=2, max_images=9, options=common, **SIZES_2K),
            # enable_sequential: n is the most the model may make, 1–12.
            ModeLimits(
                STORYBOARD, n_min=1, n_max=12, min_images=0, max_images=9, options=common, **SIZES_2K
            ),
        ),
        prompt_max=5000,
        prompt_optional_with_images=False,  # seed 000: prompt is required
        negative_prompt_max=None,
        watermark_default=False,
        input_formats=WAN_INPUT_FORMATS,
        input_transparency=False,  # "PNG (no transparency)"
        input_urls_only=False,
    )


def anyfast_seedream():
    # Seed 001 documents sizes 1K/2K/4K only (no aspect, no pixels), one reference image,
    # sequential_image_generation "auto" with max_images, watermark defaulting to true.
    # Upstream (Ark) caps max_images at 15 and reference + generated images at 15.
    common = frozenset({WATERMARK, B64_JSON})
    tier_only = dict(
        tiers=TIERS,
        aspects=(),
        exact_size=False,
        aspect_note=SEEDREAM_ASPECT,
        min_pixels=1024 * 1024,
        max_pixels=MAX_PIXELS_4K,
    )
    return Offer(
        gateway="anyfast",
        model="doubao-seedream-4-5-251128",
        display_name="Seedream 4.5",
        protocol=OPENAI_SYNC,
        upstream_model="doubao-seedream-4-5-251128",
        documented_price=None,
        modes=(
            ModeLimits(
                TEXT_TO_IMAGE, n_min=1, n_max=1, min_images=0, max_images=0, options=common, **tier_only
            ),
            ModeLimits(EDIT, n_min=1, n_max=1, min_images=1, max_images=1, options=common, **tier_only),
            # sequential_image_generation "auto": n goes as max_images.
            ModeLimits(
                STORYBOARD, n_min=1, n_max=15, min_images=0, max_images=1, options=common, **tier_only
            ),
        ),
        prompt_max=5000,  # seed 001 gives none; anyfast's Wan limit is the safe assumption
        prompt_optional_with_images=False,
        negative_prompt_max=None,
        watermark_default=True,  # seed 001: "Default: true"
        input_formats=WAN_INPUT_FORMATS,
        input_transparency=True,
        input_urls_only=False,
        max_total_images=15,
    )


def task_async_wan(gateway, model, display_name, pro, price):
    # Seeds 002 (apimart) and 003 (gccai): the same API. With image_urls the output follows the
    # last image's aspect and is at most 2K, so editing modes take a tier only. Pro text-to-image
    # alone reaches 4K.
    common = frozenset({NEGATIVE_PROMPT, SEED, WATERMARK})
    editing = dict(
        tiers=("1K", "2K"),
        aspects=(),
        exact_size=False,
        aspect_note=WAN_ASPECT_FOLLOWS_INPUT,
        min_pixels=MIN_PIXELS,
        max_pixels=MAX_PIXELS_2K,
    )
    return Offer(
        gateway=gateway,
        model=model,
        display_name=display_name,
        protocol=TASK_ASYNC,
        upstream_model=model,
        documented_price=Decimal(price),
        modes=(
            ModeLimits(
                TEXT_TO_IMAGE,
                n_min=1,
                n_max=4,
                min_images=0,
                max_images=0,
                tiers=("1K", "2K", "4K") if pro else ("1K", "2K"),
                aspects=ASPECTS,
                exact_size=True,
                min_pixels=MIN_PIXELS,
                max_pixels=MAX_PIXELS_4K if pro else MAX_PIXELS_2K,
                options=common | {THINKING_MODE, PALETTE},
            ),
            ModeLimits(
                EDIT, n_min=1, n_max=4, min_images=1, max_images=1, options=common | {PALETTE}, **editing
            ),
            ModeLimits(
                REFERENCE, n_min=1, n_max=4, min_images=2, max_images=9, options=common | {PALETTE}, **editing
            ),
            ModeLimits(
                REGION_EDIT,
                n_min=1,
                n_max=4,
                min_images=1,
                max_images=9,
                options=common | {PALETTE, BOXES},
                **editing,
            ),
            # enable_sequential ignores thinking_mode and color_palette, so neither is offered.
            ModeLimits(
                STORYBOARD,
                n_min=1,
                n_max=12,
                min_images=0,
                max_images=9,
                tiers=("1K", "2K"),
                aspects=ASPECTS,
                exact_size=True,
                min_pixels=MIN_PIXELS,
                max_pixels=MAX_PIXELS_2K,
                options=common,
            ),
        ),
        prompt_max=5000,
        prompt_optional_with_images=True,  # "optional but recommended" when editing
        negative_prompt_max=None,  # undocumented
        watermark_default=False,
        input_formats=WAN_INPUT_FORMATS,
        input_transparency=True,
        input_urls_only=False,
    )


def foxapi_wan(model, upstream_model, display_name):
    # Seed 004. foxapi documents no tiers or pixel limits for image_size; we offer 1K and 2K
    # (768²–2048²), the range every Wan 2.7 scenario accepts, and leave 4K out rather than
    # promise what it may refuse (HTTP 422, no channel can serve the options).
    common = frozenset({NEGATIVE_PROMPT, SEED, SAFETY_CHECKER})
    return Offer(
        gateway="foxapi",
        model=model,
        display_name=display_name,
        protocol=FOX_ASYNC,
        upstream_model=upstream_model,
        documented_price=None,  # foxapi publishes no per-image price
        modes=(
            ModeLimits(
                TEXT_TO_IMAGE, n_min=1, n_max=5, min_images=0, max_images=0, options=common, **SIZES_2K
            ),
            # enable_prompt_expansion is "only available in image editing mode".
            ModeLimits(
                EDIT,
                n_min=1,
                n_max=4,
                min_images=1,
                max_images=1,
                options=common | {PROMPT_EXPANSION},
                **SIZES_2K,
            ),
            ModeLimits(
                REFERENCE,
                n_min=1,
                n_max=4,
                min_images=2,
                max_images=4,
                options=common | {PROMPT_EXPANSION},
                **SIZES_2K,
            ),
        ),
        prompt_max=2000,
        prompt_optional_with_images=False,
        negative_prompt_max=500,
        watermark_default=None,
        input_formats=WAN_INPUT_FORMATS,
        input_transparency=True,
        input_urls_only=True,
    )


OFFERS = [
    anyfast_wan("wan2.7-image-pro", "Wan 2.7 Image Pro", pro=True),
    anyfast_wan("wan2.7-image", "Wan 2.7 Image", pro=False),
    anyfast_seedream(),
    task_async_wan("apimart", "wan2.7-image-pro", "Wan 2.7 Image Pro", pro=True, price="0.50"),
    task_async_wan("apimart", "wan2.7-image", "Wan 2.7 Image", pro=False, price="0.20"),
    task_async_wan("gccai", "wan2.7-image-pro", "Wan 2.7 Image Pro", pro=True, price="0.50"),
    task_async_wan("gccai", "wan2.7-image", "Wan 2.7 Image", pro=False, price="0.20"),
    foxapi_wan("wan2.7-image-pro", "wan-2.7-image-pro", "Wan 2.7 Image Pro"),
    foxapi_wan("wan2.7-image", "wan-2.7-image", "Wan 2.7 Image"),
]

_BY_KEY = {(found.gateway, found.model): found for found in OFFERS}


def offer(gateway, model):
    """The Offer for a gateway and a portal model key, or None when the gateway lacks it."""
    return _BY_KEY.get((gateway, model))


def offers_for(gateway):
    return [found for found in OFFERS if found.gateway == gateway]


def most_input_images():
    """The most input images any offer takes in one request (the create form's upload limit)."""
    return max(limits.max_images for found in OFFERS for limits in found.modes)
