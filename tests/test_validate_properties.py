"""Property tests: the portal's validate() and the simulator's wire-level checks agree.

The simulator's checks (studio/simulator/validation.py) were written from the gateways'
documentation independently of the portal's (studio/gateways/request.py and catalog.py), so
agreement between the two is evidence that both read the documentation the same way:

1. a request validate() accepts, turned into a wire body by its gateway's adapter, is accepted
   by the simulator: directly through validation.check() for many examples, and over real HTTP
   through adapter_for(gateway).submit() for a small sample;
2. a request validate() rejects is rejected on the wire too, for every rule the wire can see.
   Some of the portal's rules can't be seen there: the adapters leave out what a gateway
   doesn't take, and some of the portal's refusals are choices stricter than the gateway.
   as_the_wire_sees_it() takes each of those out of a rejected request, saying why; when
   nothing else is wrong, the rejection was the portal's alone and the example is skipped.

Requests are drawn from the whole catalog: every gateway × model × mode, prompts and negative
prompts around their limits, n in and out of range, tiers with and without aspects, exact sizes,
seeds, palettes, boxes, input images of every accepted format (real, small images; the shapes at
the 240/8000 px limits are a fixed set so each is made once) and every option.
"""

import copy
import dataclasses
import functools
import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import hypothesis
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import strategies as st
from PIL import Image

from studio import media
from studio.gateways import adapter_for, catalog, fox_async, openai_sync, task_async
from studio.gateways.errors import REJECTED, GatewayError
from studio.gateways.request import ImageRequest, InputImage, options_set, validate
from studio.simulator import validation

SEEDREAM = "doubao-seedream-4-5-251128"
WIRE_BODY = {
    catalog.OPENAI_SYNC: openai_sync.wire_body,
    catalog.TASK_ASYNC: task_async.wire_body,
    catalog.FOX_ASYNC: fox_async.wire_body,
}
# Every (gateway, model, mode) the catalog offers.
SCENARIOS = [(found.gateway, found.model, mode) for found in catalog.OFFERS for mode in found.mode_keys]

DIRECT = hypothesis.settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BROKEN = hypothesis.settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OVER_HTTP = hypothesis.settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


# --- Input images -----------------------------------------------------------------------------
# Real images, so the simulator reads them as a gateway would (format, size, transparency);
# the portal declares the same width and height. Solid colours keep the bytes small.

KINDS = {
    # kind: (Pillow mode, format, mime, colour)
    "jpeg": ("RGB", "JPEG", "image/jpeg", (200, 60, 40)),
    "png": ("RGB", "PNG", "image/png", (30, 90, 200)),
    "png-grey": ("L", "PNG", "image/png", 128),
    "png-alpha": ("RGBA", "PNG", "image/png", (30, 90, 200, 0)),  # really transparent
    "png-opaque-alpha": ("RGBA", "PNG", "image/png", (30, 90, 200, 255)),
    "png-trns": ("P", "PNG", "image/png", 3),  # a palette PNG with a transparent index
    "bmp": ("1", "BMP", "image/bmp", 1),  # 1 bit a pixel: BMP is uncompressed
    "bmp-24": ("RGB", "BMP", "image/bmp", (10, 120, 60)),
    "webp": ("RGB", "WEBP", "image/webp", (90, 90, 10)),
    "webp-alpha": ("RGBA", "WEBP", "image/webp", (90, 90, 10, 0)),
}
# Cheap to make, send and decode at any size: the ones drawn in the large shapes below.
LARGE_KINDS = ("jpeg", "png-grey")
# Sides of ordinary inputs: a fixed set, so each image is made once and then comes from the cache.
SIDES = (240, 241, 300, 512, 640, 777, 1024, 1200)
# Shapes at the documented input limits (240–8000 px a side, aspect 1:8–8:1, ≤ 20 MB), inside and
# past them. None has much over 10 million pixels: a 9000×9000 input would cost seconds an
# example and test nothing that 9000×1125 doesn't.
GOOD_EDGE_SHAPES = [(240, 1920), (1920, 240), (1000, 8000), (8000, 1000), (2000, 2500)]
BAD_SHAPES = {
    "side under 240": [(239, 1000), (1000, 239), (100, 100), (100, 240), (239, 239)],
    "side over 8000": [(8001, 1001), (1001, 8001), (9000, 1125)],
    "narrower than 1:8": [(240, 1921), (1921, 240), (300, 2401), (2401, 300)],
}
# A BMP this size is over the 20 MB input limit (the other formats compress it to kilobytes).
TOO_MANY_BYTES = ("bmp-24", (2700, 2700))
IMAGE_HOST = "http://images.invalid"  # replaced by a real loopback host in the HTTP test


@functools.lru_cache(maxsize=1024)
def image_bytes(kind, width, height):
    mode, fmt, _, colour = KINDS[kind]
    image = Image.new(mode, (width, height), colour)
    options = {}
    if kind == "png-trns":
        options["transparency"] = 3
    if fmt == "PNG":
        options["compress_level"] = 1
    if fmt == "WEBP":
        options.update(quality=50, method=0)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def input_image(kind, shape):
    width, height = shape
    return InputImage(
        data=image_bytes(kind, width, height),
        mime=KINDS[kind][2],
        width=width,
        height=height,
        url=f"{IMAGE_HOST}/{kind}/{width}x{height}",
    )


def bytes_at(url):
    """The image an input_image() URL names (what the image host serves)."""
    kind, shape = url.rstrip("/").split("/")[-2:]
    width, height = shape.split("x")
    return image_bytes(kind, int(width), int(height))


@functools.cache
def ordinary_images():
    kinds = [kind for kind in KINDS if kind != "bmp-24"]
    shapes = st.tuples(st.sampled_from(SIDES), st.sampled_from(SIDES))
    return st.builds(input_image, st.sampled_from(kinds), shapes)


@functools.cache
def edge_images(valid, small_only):
    if valid:
        shapes = [(240, 1920), (1920, 240)] if small_only else GOOD_EDGE_SHAPES
        return st.builds(input_image, st.sampled_from(LARGE_KINDS), st.sampled_from(shapes))
    # One way past a limit, then a shape: each limit gets its share of the examples.
    faults = [
        st.builds(input_image, st.sampled_from(LARGE_KINDS), st.sampled_from(shapes))
        for fault, shapes in BAD_SHAPES.items()
        if not (small_only and fault == "side over 8000")
    ]
    if not small_only:
        faults.append(st.just(TOO_MANY_BYTES).map(lambda kind_shape: input_image(*kind_shape)))
    return st.one_of(faults)


@functools.cache
@st.composite
def images(draw, limits, valid, small_only=False):
    """Input images: as many as the mode takes, mostly ordinary ones, some at the edge shapes.
    Broken: a count out of range, or one image past a limit."""
    # Up to 3 images mostly, the mode's most now and then: anyfast re-encodes every PNG it sends.
    most = limits.max_images if not small_only and draw(st.integers(0, 4)) == 0 else min(limits.max_images, 3)
    count = draw(st.integers(limits.min_images, max(limits.min_images, most)))
    good = st.one_of(ordinary_images(), ordinary_images(), ordinary_images(), edge_images(True, small_only))
    if valid:
        return draw(st.lists(good, min_size=count, max_size=count))
    if draw(st.booleans()):
        # Past the wire's own maximum (9 images, 4 on foxapi), or just past the mode's.
        count = draw(
            st.sampled_from([limits.min_images - 1, limits.max_images + 1, 5, 10]).filter(lambda c: c >= 0)
        )
        if small_only:
            count = min(count, 5)
        return draw(st.lists(ordinary_images(), min_size=count, max_size=count))
    inputs = draw(st.lists(good, min_size=max(count, 1), max_size=max(count, 1)))
    inputs[draw(st.integers(0, len(inputs) - 1))] = draw(edge_images(False, small_only))
    return inputs


# --- Request fields ---------------------------------------------------------------------------

WORDS = "A lighthouse at dusk over a calm sea, seen from the cliffs. "


def text(length):
    return (WORDS * (length // len(WORDS) + 1))[:length]


@functools.cache
def prompts(offer, valid, with_images):
    limit = offer.prompt_max
    if valid:
        good = st.one_of(st.integers(1, 120), st.sampled_from([limit - 1, limit])).map(text)
        if offer.prompt_optional_with_images and with_images:
            good = st.one_of(good, st.sampled_from(["", "   "]))
        return good
    too_long = st.one_of(st.sampled_from([limit + 1, 5001]), st.integers(limit + 1, limit + 300))
    return st.one_of(too_long.map(text), st.sampled_from(["", "   "]))


@functools.cache
def negative_prompts(offer, limits, valid):
    if valid:
        if catalog.NEGATIVE_PROMPT not in limits.options:
            return st.just("")
        most = offer.negative_prompt_max or 600  # apimart/gccai document no limit
        return st.one_of(st.just(0), st.integers(1, 60), st.sampled_from([most - 1, most])).map(text)
    most = offer.negative_prompt_max or 600
    return st.one_of(st.just(most + 1), st.integers(most + 1, most + 100)).map(text)


@functools.cache
def counts(offer, limits, valid, with_images):
    low, high = limits.n_min, limits.n_max
    if offer.max_total_images:
        high = max(low, min(high, offer.max_total_images - with_images))
    if valid:
        return st.one_of(st.integers(low, high), st.sampled_from([low, high]))
    # high + 1 is past the inputs-plus-outputs cap where there is one (Seedream: 15 in all).
    return st.one_of(st.just(high + 1), st.just(low - 1), st.integers(-1, 17))


@functools.cache
def seeds(valid):
    if valid:
        return st.one_of(st.none(), st.integers(0, catalog.SEED_MAX), st.sampled_from([0, catalog.SEED_MAX]))
    too_big = st.integers(catalog.SEED_MAX + 1, 2**40)
    return st.one_of(st.sampled_from([-1, catalog.SEED_MAX + 1]), st.integers(-(2**40), -1), too_big)


@functools.cache
def exact_shapes(limits, valid):
    """(width, height) at and past the pixel-total limits and the 1:8–8:1 aspect limit."""
    low, high = catalog.side_of(limits.min_pixels), catalog.side_of(limits.max_pixels)
    if valid:
        return st.one_of(
            st.tuples(st.integers(low, high), st.integers(low, high)),
            st.sampled_from([(low, low), (high, high), (400, 3200), (3200, 400), (300, 2400), (2400, 300)]),
        )
    bad = st.sampled_from(
        [(low - 1, low), (low, low - 1), (high + 1, high), (high, high + 1), (400, 3201), (3201, 400)]
    )
    too_few = st.tuples(st.integers(100, low - 1), st.integers(100, low - 1))
    too_many = st.tuples(st.integers(high + 1, 6000), st.integers(high + 1, 6000))
    return st.one_of(bad, too_few, too_many)


SIZE_FAULTS = (
    # refused on the wire
    "tier beyond the mode's",
    "exact past a limit",
    "exact past a limit",
    # refused by the portal alone where the adapter drops or the gateway ignores what's wrong
    "aspect without a tier",
    "tier and exact together",
    "aspect or exact where a tier only is offered",
)


@functools.cache
@st.composite
def sizes(draw, limits, valid):
    """(size_tier, aspect, width, height)."""
    if valid:
        choice = draw(st.sampled_from(["default", "tier"] + (["exact"] if limits.exact_size else [])))
        if choice == "default":
            return None, None, None, None
        tier = draw(st.sampled_from(limits.tiers))
        if choice == "tier":
            aspect = draw(st.one_of(st.none(), st.sampled_from(limits.aspects))) if limits.aspects else None
            return tier, aspect, None, None
        return (None, None, *draw(exact_shapes(limits, True)))
    fault = draw(st.sampled_from(SIZE_FAULTS))
    beyond = [tier for tier in catalog.TIERS if tier not in limits.tiers]
    if fault == "tier beyond the mode's" and beyond:
        aspect = draw(st.one_of(st.none(), st.sampled_from(limits.aspects))) if limits.aspects else None
        return draw(st.sampled_from(beyond)), aspect, None, None
    if fault == "aspect without a tier":
        return None, draw(st.sampled_from(catalog.ASPECTS)), None, None
    tier = draw(st.sampled_from(limits.tiers))
    if fault == "tier and exact together":
        return (tier, None, *draw(exact_shapes(limits, draw(st.booleans()))))
    if fault == "aspect or exact where a tier only is offered":
        if draw(st.booleans()):
            return tier, draw(st.sampled_from(catalog.ASPECTS[1:])), None, None
        return (None, None, *draw(exact_shapes(limits, True)))
    return (None, None, *draw(exact_shapes(limits, False)))


def ratio_text(hundredths, style):
    whole, cents = divmod(hundredths, 100)
    if style == "compact":  # 23.5%, 24%: shorter forms the NN.NN% pattern also takes
        return f"{whole}.{cents:02d}".rstrip("0").rstrip(".") + "%"
    if style == "three decimals":
        return f"{whole}.{cents:02d}0%"
    if style == "no percent sign":
        return f"{whole}.{cents:02d}"
    return f"{whole}.{cents:02d}%"


# "none": a good palette, which the storyboard mode refuses all the same
PALETTE_FAULTS = ("none", "count", "sum", "zero", "format", "hex", "number")


@functools.cache
@st.composite
def palettes(draw, valid):
    fault = None if valid else draw(st.sampled_from(PALETTE_FAULTS))
    if fault == "count":
        count = draw(st.sampled_from([1, 2, 11, 12]))
    else:
        count = draw(st.one_of(st.integers(3, 10), st.sampled_from([3, 10])))
    # count parts in hundredths of a percent, each at least 0.01%, adding up to 100.00%
    weights = draw(st.lists(st.integers(1, 5000), min_size=count, max_size=count))
    parts = [max(1, weight * 10000 // sum(weights)) for weight in weights]
    parts[parts.index(max(parts))] += 10000 - sum(parts)
    style = draw(st.sampled_from(["two decimals", "compact"]))
    if fault == "sum":
        parts[draw(st.integers(0, count - 1))] += draw(st.sampled_from([-1, 1, 100]))
    elif fault == "zero":
        parts[0], parts[-1] = 0, parts[-1] + parts[0]
    elif fault == "format":
        style = draw(st.sampled_from(["three decimals", "no percent sign"]))
    entries = []
    for part in parts:
        colour = draw(st.integers(0, 0xFFFFFF))
        hex_ = f"#{colour:06x}" if draw(st.booleans()) else f"#{colour:06X}"
        entries.append({"hex": hex_, "ratio": ratio_text(part, style) if part >= 0 else f"{part}%"})
    if fault == "hex":
        entries[0]["hex"] = draw(st.sampled_from(["C2D1E6", "#C2D1E", "#GGGGGG", "red"]))
    if fault == "number":
        entries[0]["ratio"] = parts[0] / 100
    return entries


@st.composite
def boxes_for(draw, inputs, valid):
    """One list of boxes per input image, inside it; broken: outside, reversed, too many, or one
    list too many or too few."""
    lists = []
    for image in inputs:
        boxes = []
        for _ in range(draw(st.integers(0, catalog.BOXES_PER_IMAGE))):
            x1 = draw(st.integers(0, image.width - 1))
            y1 = draw(st.integers(0, image.height - 1))
            x2 = draw(st.one_of(st.integers(x1 + 1, image.width), st.just(image.width)))
            y2 = draw(st.one_of(st.integers(y1 + 1, image.height), st.just(image.height)))
            boxes.append([x1, y1, x2, y2])
        lists.append(boxes)
    if not inputs:
        return [[[0, 0, 5, 5]]] if not valid else None
    if not any(lists):
        lists[-1] = [[0, 0, inputs[-1].width, inputs[-1].height]]
    if valid:
        return lists
    fault = draw(st.sampled_from(["outside", "reversed", "three", "lists"]))
    number = draw(st.integers(0, len(lists) - 1))
    image = inputs[number]
    if fault == "outside":
        edges = [[-1, 0, 10, 10], [0, -1, 10, 10], [0, 0, image.width + 1, 10], [0, 0, 10, image.height + 1]]
        lists[number] = [*lists[number][:1], draw(st.sampled_from(edges))]
    elif fault == "reversed":
        lists[number] = [draw(st.sampled_from([[10, 10, 10, 20], [10, 20, 20, 5], [30, 0, 20, 10]]))]
    elif fault == "three":
        lists[number] = [[0, 0, 10, 10]] * 3
    elif draw(st.booleans()):
        lists.append([[0, 0, 10, 10]])
    else:
        lists = lists[:-1]
    return lists


@functools.cache
def options(valid, limits, option):
    if valid and option not in limits.options:
        return st.none()
    return st.one_of(st.none(), st.booleans())


FIELDS = ("images", "prompt", "negative_prompt", "n", "size", "seed", "options", "palette", "boxes")
# Where breaking a field can show on the wire; elsewhere the adapter doesn't send it (such
# requests are still drawn, as "any").
WHERE = {
    "negative_prompt": lambda offer, limits: offer.negative_prompt_max is not None,
    "seed": lambda offer, limits: catalog.SEED in limits.options,
    "palette": lambda offer, limits: offer.protocol == catalog.TASK_ASYNC,
    "boxes": lambda offer, limits: limits.mode == catalog.REGION_EDIT,
}


def fields_for(scenario):
    offer = catalog.offer(*scenario[:2])
    limits = offer.limits(scenario[2])
    return [field for field in FIELDS if WHERE.get(field, lambda *_: True)(offer, limits)]


@st.composite
def cases(draw, scenario, valid=False, over_http=False):
    """(ImageRequest, [InputImage]) for a (gateway, model, mode) of the catalog.

    valid=True aims at valid requests (most are). Otherwise one field is drawn at and past its
    limits while the others aim at valid, or now and then ("any") a random set of fields is:
    one broken rule at a time is what shows which rule the two sides disagree on.
    """
    gateway, model, mode = scenario
    offer = catalog.offer(gateway, model)
    limits = offer.limits(mode)
    if valid:
        broken = set()
    else:
        field = draw(st.sampled_from([*fields_for(scenario), "any"]))
        broken = draw(st.sets(st.sampled_from(FIELDS))) if field == "any" else {field}

    inputs = draw(images(limits, "images" not in broken, small_only=over_http))
    tier, aspect, width, height = draw(sizes(limits, "size" not in broken))
    palette = None
    if "palette" in broken or (catalog.PALETTE in limits.options and draw(st.booleans())):
        palette = draw(palettes("palette" not in broken))
    boxes = None
    if "boxes" in broken or (catalog.BOXES in limits.options and inputs):
        boxes = draw(boxes_for(inputs, "boxes" not in broken))
    good_options = "options" not in broken
    b64 = not over_http and (not good_options or catalog.B64_JSON in limits.options)
    request = ImageRequest(
        gateway=gateway,
        model=model,
        mode=mode,
        prompt=draw(prompts(offer, "prompt" not in broken, bool(inputs))),
        negative_prompt=draw(negative_prompts(offer, limits, "negative_prompt" not in broken)),
        n=draw(counts(offer, limits, "n" not in broken, len(inputs))),
        size_tier=tier,
        aspect=aspect,
        width=width,
        height=height,
        seed=draw(seeds("seed" not in broken)),
        watermark=draw(options(good_options, limits, catalog.WATERMARK)),
        thinking_mode=draw(options(good_options, limits, catalog.THINKING_MODE)),
        palette=palette,
        boxes=boxes,
        safety_checker=draw(options(good_options, limits, catalog.SAFETY_CHECKER)),
        prompt_expansion=draw(options(good_options, limits, catalog.PROMPT_EXPANSION)),
        response_format=draw(st.sampled_from(["url", "b64_json"])) if b64 else "url",
    )
    return request, inputs


# --- What the wire can see --------------------------------------------------------------------

# Options validate() refuses in a mode or on a gateway but that never reach the wire: each
# adapter sends only the fields its gateway documents (anyfast Wan has no negative_prompt,
# color_palette or bbox_list; Seedream has no seed or thinking_mode; only anyfast returns
# base64; only foxapi has the safety checker and prompt expansion; bbox_list goes only in
# region-edit mode). thinking_mode is the exception that is sent: anyfast and apimart/gccai
# document it as "only effective" for text-to-image without sequential mode, so the gateway
# takes it elsewhere and ignores it, and the portal refusing it is the portal's choice. These
# two do reach the wire and are refused there too, so they stay in the comparison:
REFUSED_ON_THE_WIRE = {
    (catalog.TASK_ASYNC, catalog.PALETTE),  # color_palette with enable_sequential (seeds 002, 003)
    (catalog.FOX_ASYNC, catalog.PROMPT_EXPANSION),  # "only available in image editing mode" (seed 004)
}
CLEARED = {
    catalog.NEGATIVE_PROMPT: ("negative_prompt", ""),
    catalog.SEED: ("seed", None),
    catalog.WATERMARK: ("watermark", None),
    catalog.THINKING_MODE: ("thinking_mode", None),
    catalog.PALETTE: ("palette", None),
    catalog.BOXES: ("boxes", None),
    catalog.SAFETY_CHECKER: ("safety_checker", None),
    catalog.PROMPT_EXPANSION: ("prompt_expansion", None),
    catalog.B64_JSON: ("response_format", "url"),
}


def wire_mode(request, inputs):
    """The mode the wire can tell: the gateways know no modes, only whether input images (and
    bbox_list) are present and whether sequential generation is on. So "text-to-image with an
    image" goes out as an edit, "edit with two images" as a reference and "region edit without
    any box" as an edit (bbox_list all [] marks nothing); the portal's refusal of such a
    mismatch is its own."""
    if request.mode == catalog.STORYBOARD:
        return catalog.STORYBOARD
    if request.mode == catalog.REGION_EDIT and (not inputs or any(request.boxes or [])):
        return catalog.REGION_EDIT  # bbox_list goes out, and the wire checks it against image_urls
    if not inputs:
        return catalog.TEXT_TO_IMAGE
    return catalog.EDIT if len(inputs) == 1 else catalog.REFERENCE


def as_the_wire_sees_it(request, inputs):
    """The request without the rules the wire can't see, each taken out as the adapter would."""
    offer = catalog.offer(request.gateway, request.model)
    seen = dataclasses.replace(request)
    seedream = request.model == SEEDREAM
    if seedream:
        # seedream_body sends one reference image (seed 001: `image` is one URL); the others
        # never leave the portal.
        inputs = inputs[:1]
    seen.mode = wire_mode(seen, inputs)
    limits = offer.limits(seen.mode)

    exact = seen.width is not None or seen.height is not None
    if exact and seen.size_tier:
        if seedream:  # seedream_body sends the tier only
            seen.width = seen.height = None
        else:  # the other adapters send the exact pixels and drop the tier
            seen.size_tier = seen.aspect = None
    if seen.aspect and not seen.size_tier:
        seen.aspect = None  # no adapter sends an aspect without a tier
    if seedream:
        seen.aspect = seen.width = seen.height = None  # seedream_body sends the tier only
    if offer.protocol == catalog.TASK_ASYNC and not limits.aspects:
        # Editing on apimart/gccai: "output aspect ratio automatically matches the last input
        # image", so the gateway takes a ratio or pixels in `size` and keeps only their area;
        # the portal offers a tier alone there, by choice.
        seen.aspect = None
        if not limits.exact_size:
            seen.width = seen.height = None
    if (
        offer.protocol == catalog.FOX_ASYNC
        and "pro" in offer.upstream_model
        and seen.mode == catalog.TEXT_TO_IMAGE
    ):
        # foxapi documents no range for image_size. The catalog stops at 2048² by choice (see
        # catalog.foxapi_wan); the simulator applies Wan's own range, which for pro
        # text-to-image reaches 4096². Sizes in between are the portal's refusal alone.
        size = seen.pixel_size()
        if size and catalog.MAX_PIXELS_2K < size[0] * size[1] <= catalog.MAX_PIXELS_4K:
            if max(size) <= catalog.MAX_ASPECT * min(size):
                seen.size_tier = seen.aspect = seen.width = seen.height = None

    for option in options_set(seen):
        if option not in limits.options and (offer.protocol, option) not in REFUSED_ON_THE_WIRE:
            field, cleared = CLEARED[option]
            setattr(seen, field, cleared)
    if seen.mode == catalog.REGION_EDIT and seen.boxes is not None and len(seen.boxes) < len(inputs):
        seen.boxes = [*seen.boxes, *[[]] * (len(inputs) - len(seen.boxes))]  # task_async pads with []
    if seedream:
        if seen.mode != catalog.STORYBOARD:
            seen.n = 1  # seedream_body sends no n outside sequential generation
        # Seed 001 documents no prompt limit; the catalog's 5000 is anyfast Wan's, assumed.
        seen.prompt = seen.prompt[: offer.prompt_max]
    return seen, inputs


# --- Sending to the simulator's checks --------------------------------------------------------


def wire_body(request, inputs):
    return WIRE_BODY[catalog.GATEWAYS[request.gateway].protocol](request, ready(request, inputs))


def ready(request, inputs):
    """The inputs as media.input_images hands them to the request's adapter."""
    offer = catalog.offer(request.gateway, request.model)
    return [media.prepare_input(image, offer) for image in inputs]


class FakeDownload:
    def __init__(self, url):
        self.status_code = 200
        self.content = bytes_at(url)


def no_plan_images(inputs, boxes=None):
    """validation.input_fields without decoding the last image for rendering: only the plan needs
    it, no check does, and decoding 8000-px inputs for every example would be slow."""
    return {"boxes": boxes or [], "input_sizes": [list(image.size) for image in inputs], "base_image": None}


def simulator_check(gateway, body):
    """validation.check() as the simulator's view runs it, with foxapi's downloads served from
    memory. Returns the Plan or raises validation.Invalid."""
    with (
        mock.patch.object(validation.requests, "get", lambda url, timeout: FakeDownload(url)),
        mock.patch.object(validation, "input_fields", no_plan_images),
    ):
        return validation.check(gateway, copy.deepcopy(body))


def describe(request, inputs):
    shapes = [(image.mime, image.width, image.height) for image in inputs]
    fields = {key: value for key, value in request.to_dict().items() if value not in (None, "", "url")}
    if len(fields.get("prompt", "")) > 40:
        fields["prompt"] = f"<{len(fields['prompt'])} chars>"
    return f"{fields} inputs={shapes}"


# --- 1. What validate() accepts, the simulator accepts ------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids="-".join)
@DIRECT
@given(data=st.data())
def test_what_validate_accepts_the_simulator_accepts(scenario, data):
    request, inputs = data.draw(cases(scenario, valid=True))
    errors = validate(request, inputs)
    hypothesis.assume(errors == {})
    event(f"{request.gateway} {request.model} {request.mode}")
    body = wire_body(request, inputs)
    try:
        plan = simulator_check(request.gateway, body)
    except validation.Invalid as exc:
        pytest.fail(
            f"the simulator refused a valid request: {exc.message} ({exc.param})\n{describe(request, inputs)}"
        )
    assert plan.n == request.n
    assert plan.mode == ("edit" if inputs else "text-to-image")


# --- 2. What validate() rejects, the simulator rejects (where the wire can see it) ---------------


@pytest.mark.parametrize("scenario", SCENARIOS, ids="-".join)
@BROKEN
@given(data=st.data())
def test_what_validate_rejects_the_simulator_rejects(scenario, data):
    request, inputs = data.draw(cases(scenario))
    errors = validate(request, inputs)
    hypothesis.assume(errors)
    seen, seen_inputs = as_the_wire_sees_it(request, inputs)
    wire_errors = validate(seen, seen_inputs)
    if not wire_errors:
        event("rejected for a rule the wire can't see")
        return
    event(f"rejected on the wire: {', '.join(sorted(wire_errors))}")
    try:
        body = wire_body(request, inputs)
    except GatewayError as exc:
        assert exc.error_class == REJECTED
        return  # the wire body can't even be built
    try:
        simulator_check(request.gateway, body)
    except validation.Invalid:
        return
    pytest.fail(f"the simulator accepted what validate() refused: {wire_errors}\n{describe(request, inputs)}")


# --- Over real HTTP -----------------------------------------------------------------------------


@pytest.fixture
def image_host():
    """A public image host on loopback serving input_image() URLs, for foxapi's image_urls."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            data = bytes_at(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def adapters(simulator):
    """adapter_for(), with the pooled sessions closed afterwards: a kept-alive connection keeps
    its live-server thread, and so that thread's database connection (CONN_MAX_AGE), open, and
    PostgreSQL then refuses to drop the test database."""
    yield adapter_for
    for gateway in catalog.GATEWAYS:
        adapter_for(gateway).session.close()


@pytest.mark.django_db(transaction=True)
# The simulator keeps a copy of the last input image for rendering edits; Pillow warns when it
# converts the palette PNG with a transparent index.
@pytest.mark.filterwarnings("ignore:Palette images with Transparency:UserWarning")
@OVER_HTTP
@given(valid=st.booleans(), data=st.data())
def test_the_http_path_agrees(adapters, settings, image_host, valid, data):
    """Submitting through the adapter over HTTP gets the answer the checks give directly: a
    valid request is taken, one refused on the wire is answered 400 and becomes a rejected
    GatewayError."""
    settings.STUDIO_SIMULATOR_LATENCY = 0.01  # anyfast answers at once
    request, inputs = data.draw(cases(data.draw(st.sampled_from(SCENARIOS)), valid=valid, over_http=True))
    inputs = [dataclasses.replace(image, url=image.url.replace(IMAGE_HOST, image_host)) for image in inputs]
    try:
        validation.check(request.gateway, wire_body(request, inputs))
        accepted = True
    except validation.Invalid:
        accepted = False
    if not validate(request, inputs):
        assert accepted, describe(request, inputs)
    elif validate(*as_the_wire_sees_it(request, inputs)):
        assert not accepted, describe(request, inputs)
    event("taken" if accepted else "refused")
    try:
        state = adapters(request.gateway).submit(request, ready(request, inputs))
    except GatewayError as exc:
        assert not accepted, f"{exc!r}\n{describe(request, inputs)}"
        assert (exc.error_class, exc.status) == (REJECTED, 400)
        return
    assert accepted, describe(request, inputs)
    assert state.status in ("pending", "running", "completed")
