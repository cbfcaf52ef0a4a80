"""request.validate(): every documented rule, with the message a person sees."""

import pytest

from studio.gateways.request import ImageRequest, InputImage, validate

PALETTE = [
    {"hex": "#C2D1E6", "ratio": "23.51%"},
    {"hex": "#CDD8E9", "ratio": "20.13%"},
    {"hex": "#636574", "ratio": "56.36%"},
]


def image(width=1600, height=1200, mime="image/jpeg", **extra):
    return {"width": width, "height": height, "mime": mime, **extra}


def req(gateway="apimart", model="wan2.7-image-pro", mode="text-to-image", prompt="A flower shop", **fields):
    return ImageRequest(gateway=gateway, model=model, mode=mode, prompt=prompt, **fields)


def errors_for(request, inputs=()):
    return validate(request, list(inputs))


# --- Valid requests ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "inputs"),
    [
        (req("anyfast", size_tier="4K", aspect="16:9", thinking_mode=True, seed=0, watermark=False), []),
        (req("anyfast", "doubao-seedream-4-5-251128", "storyboard", n=14, size_tier="4K"), [image()]),
        (req("apimart", mode="region-edit", boxes=[[[0, 0, 1600, 1200]]], palette=PALETTE), [image()]),
        (req("gccai", "wan2.7-image", "reference", prompt="", size_tier="2K"), [image(), image()]),
        (
            req("foxapi", mode="reference", n=4, negative_prompt="x" * 500, prompt_expansion=True),
            [image()] * 4,
        ),
        (req("foxapi", n=5, width=2048, height=2048, seed=2147483647, safety_checker=False), []),
        (req("apimart", width=4096, height=4096), []),
        (req("apimart", width=768, height=768), []),
    ],
)
def test_valid_requests_have_no_errors(request_, inputs):
    assert errors_for(request_, inputs) == {}


def test_it_accepts_input_image_objects():
    picture = InputImage(data=b"x" * 10, mime="image/png", width=800, height=600)
    assert errors_for(req(mode="edit"), [picture]) == {}


def test_it_reads_the_byte_size_as_media_input_meta_names_it():
    assert errors_for(req(mode="edit"), [image(bytes=21 * 1024 * 1024)]) == {
        "images": ["Image 1 is 21.0 MB; the limit is 20 MB."]
    }


# --- Gateway, model, mode ---------------------------------------------------------------------


def test_it_rejects_an_unknown_gateway():
    assert errors_for(req("nowhere")) == {"gateway": ["There is no gateway called 'nowhere'."]}


def test_it_rejects_a_model_the_gateway_lacks():
    assert errors_for(req("foxapi", "doubao-seedream-4-5-251128")) == {
        "model": [
            "foxapi does not offer 'doubao-seedream-4-5-251128'; it offers wan2.7-image-pro, wan2.7-image."
        ]
    }


def test_it_rejects_a_mode_the_model_lacks():
    assert errors_for(req("anyfast", mode="region-edit")) == {
        "mode": [
            "wan2.7-image-pro on anyfast has no region edit mode; it offers text-to-image, edit, reference, "
            "storyboard."
        ]
    }
    assert errors_for(req("foxapi", mode="storyboard"))["mode"][0].startswith(
        "wan2.7-image-pro on foxapi has no storyboard mode"
    )


def test_it_rejects_an_unknown_mode():
    assert errors_for(req(mode="collage")) == {"mode": ["There is no mode called 'collage'."]}


# --- Prompt -----------------------------------------------------------------------------------


def test_prompt_is_required_for_text_to_image():
    assert errors_for(req(prompt="   ")) == {"prompt": ["Write a prompt."]}


def test_prompt_is_optional_when_editing_on_task_async():
    assert errors_for(req("apimart", mode="edit", prompt=""), [image()]) == {}


def test_prompt_is_required_when_editing_on_anyfast_and_foxapi():
    assert errors_for(req("anyfast", mode="edit", prompt=""), [image()]) == {"prompt": ["Write a prompt."]}
    assert errors_for(req("foxapi", mode="edit", prompt=""), [image()]) == {"prompt": ["Write a prompt."]}


def test_prompt_length_is_5000_and_2000_on_foxapi():
    assert errors_for(req("apimart", prompt="x" * 5000)) == {}
    assert errors_for(req("apimart", prompt="x" * 5001)) == {
        "prompt": ["The prompt is 5001 characters; apimart accepts at most 5000."]
    }
    assert errors_for(req("foxapi", prompt="x" * 2001)) == {
        "prompt": ["The prompt is 2001 characters; foxapi accepts at most 2000."]
    }


def test_negative_prompt_is_at_most_500_on_foxapi():
    assert errors_for(req("foxapi", negative_prompt="x" * 501)) == {
        "negative_prompt": ["The negative prompt is 501 characters; foxapi accepts at most 500."]
    }


def test_negative_prompt_is_an_error_on_anyfast():
    assert errors_for(req("anyfast", negative_prompt="blurry")) == {
        "negative_prompt": ["anyfast does not support a negative prompt for wan2.7-image-pro."]
    }


# --- Number of images -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "inputs", "message"),
    [
        (req("anyfast", n=5), [], "Text-to-image on anyfast makes 1–4 images per request, not 5."),
        (req("anyfast", n=0), [], "Text-to-image on anyfast makes 1–4 images per request, not 0."),
        (
            req("apimart", mode="storyboard", n=13),
            [],
            "Storyboard on apimart makes 1–12 images per request, not 13.",
        ),
        (req("foxapi", n=6), [], "Text-to-image on foxapi makes 1–5 images per request, not 6."),
        (req("foxapi", mode="edit", n=5), [image()], "Edit on foxapi makes 1–4 images per request, not 5."),
        (
            req("anyfast", "doubao-seedream-4-5-251128", n=2),
            [],
            "doubao-seedream-4-5-251128 makes exactly 1 image per request in text-to-image mode; "
            "use storyboard mode for a series.",
        ),
        (
            req("anyfast", "doubao-seedream-4-5-251128", "storyboard", n=15),
            [image()],
            "Seedream 4.5 handles at most 15 images per request, input images included; "
            "this asks for 15 plus 1 input.",
        ),
    ],
)
def test_n_ranges(request_, inputs, message):
    assert errors_for(request_, inputs) == {"n": [message]}


def test_n_must_be_a_whole_number():
    assert errors_for(req(n="2")) == {"n": ["The number of images must be a whole number."]}


def test_foxapi_allows_five_for_text_to_image():
    assert errors_for(req("foxapi", n=5)) == {}


# --- Size -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "inputs", "message"),
    [
        (
            req("anyfast", mode="edit", size_tier="4K"),
            [image()],
            "4K is only available for wan2.7-image-pro text-to-image.",
        ),
        (
            req("apimart", mode="storyboard", size_tier="4K"),
            [],
            "4K is only available for wan2.7-image-pro text-to-image.",
        ),
        (
            req("apimart", "wan2.7-image", size_tier="4K"),
            [],
            "wan2.7-image on apimart offers 1K or 2K, not 4K. 4K is only available for wan2.7-image-pro "
            "text-to-image.",
        ),
        (req("foxapi", size_tier="4K"), [], "wan2.7-image-pro on foxapi offers 1K or 2K, not 4K."),
        (req(size_tier="8K"), [], "'8K' is not a size tier; choose 1K, 2K or 4K."),
        (
            req(size_tier="2K", aspect="21:9"),
            [],
            "'21:9' is not an aspect ratio on offer; choose one of 1:1, 16:9, 9:16, 4:3, 3:4, 3:2, 2:3.",
        ),
        (req(aspect="16:9"), [], "Choose a size tier (1K, 2K or 4K) to go with the aspect ratio."),
        (
            req(size_tier="2K", width=1024, height=1024),
            [],
            "Choose either a size tier or an exact width × height, not both.",
        ),
        (req(width=1024), [], "Give both width and height as whole numbers of pixels."),
        (
            req(width=4096, height=500),
            [],
            "4096×500 is too narrow: the aspect ratio must be between 1:8 and 8:1.",
        ),
        (
            req(width=700, height=700),
            [],
            "700×700 is 490,000 pixels; wan2.7-image-pro text-to-image on apimart makes 768×768 to 4096×4096 "
            "(589,824–16,777,216 pixels).",
        ),
        (
            req(model="wan2.7-image", width=2100, height=2100),
            [],
            "2100×2100 is 4,410,000 pixels; wan2.7-image text-to-image on apimart makes 768×768 to 2048×2048 "
            "(589,824–4,194,304 pixels).",
        ),
        (
            req("anyfast", mode="reference", width=3000, height=2000),
            [image(), image()],
            "3000×2000 is 6,000,000 pixels; wan2.7-image-pro reference on anyfast makes 768×768 to 2048×2048 "
            "(589,824–4,194,304 pixels).",
        ),
        (
            req("apimart", mode="edit", size_tier="2K", aspect="16:9"),
            [image()],
            "The output takes the aspect of the last input image in this mode, so choose only a size tier.",
        ),
        (
            req("apimart", mode="edit", width=1024, height=1024),
            [image()],
            "The output takes the aspect of the last input image in this mode, so choose only a size tier, "
            "not an exact width × height.",
        ),
        (
            req("anyfast", "doubao-seedream-4-5-251128", size_tier="2K", aspect="16:9"),
            [],
            "Seedream on anyfast takes only a size tier (1K, 2K or 4K); the model picks the aspect.",
        ),
    ],
)
def test_size_rules(request_, inputs, message):
    assert errors_for(request_, inputs) == {"size": [message]}


def test_a_tier_with_an_aspect_is_checked_as_pixels():
    # 4K 16:9 is 5456×3072: within pro text-to-image's 4096² budget.
    assert errors_for(req("anyfast", size_tier="4K", aspect="16:9")) == {}
    assert req(size_tier="4K", aspect="16:9").pixel_size() == (5456, 3072)


# --- Seed -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [-1, 2147483648, "7", 1.5, True])
def test_seed_range(seed):
    assert errors_for(req(seed=seed)) == {"seed": ["The seed must be a whole number from 0 to 2147483647."]}


def test_seed_is_an_error_where_unsupported():
    assert errors_for(req("anyfast", "doubao-seedream-4-5-251128", seed=1)) == {
        "seed": ["anyfast does not support a seed for doubao-seedream-4-5-251128."]
    }


# --- Options a gateway or mode lacks ----------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "inputs", "field", "message"),
    [
        (
            req(mode="edit", thinking_mode=True),
            [image()],
            "thinking_mode",
            "Thinking mode can't be used in edit mode, only in text-to-image.",
        ),
        (
            req(mode="storyboard", thinking_mode=False),
            [],
            "thinking_mode",
            "Thinking mode can't be used in storyboard mode, only in text-to-image.",
        ),
        (
            req("foxapi", thinking_mode=True),
            [],
            "thinking_mode",
            "foxapi does not support thinking mode for wan2.7-image-pro.",
        ),
        (
            req("foxapi", watermark=False),
            [],
            "watermark",
            "foxapi does not support the watermark setting for wan2.7-image-pro.",
        ),
        (
            req("apimart", safety_checker=True),
            [],
            "safety_checker",
            "apimart does not support the safety checker setting for wan2.7-image-pro.",
        ),
        (
            req("foxapi", prompt_expansion=True),
            [],
            "prompt_expansion",
            "Prompt expansion can't be used in text-to-image mode, only in edit, reference.",
        ),
        (
            req("apimart", response_format="b64_json"),
            [],
            "response_format",
            "apimart does not support base64 results for wan2.7-image-pro.",
        ),
        (
            req("anyfast", response_format="png"),
            [],
            "response_format",
            'Results come as "url" or "b64_json", not \'png\'.',
        ),
        (
            req(mode="storyboard", palette=PALETTE),
            [],
            "palette",
            "A colour palette can't be used in storyboard mode, "
            "only in text-to-image, edit, reference, region edit.",
        ),
        (
            req("anyfast", palette=PALETTE),
            [],
            "palette",
            "anyfast does not support a colour palette for wan2.7-image-pro.",
        ),
        (
            req(mode="edit", boxes=[[[0, 0, 10, 10]]]),
            [image()],
            "boxes",
            "Region boxes can't be used in edit mode, only in region edit.",
        ),
    ],
)
def test_options_a_gateway_or_mode_lacks_are_errors(request_, inputs, field, message):
    assert errors_for(request_, inputs) == {field: [message]}


def test_seedream_watermark_can_be_turned_off():
    assert errors_for(req("anyfast", "doubao-seedream-4-5-251128", watermark=False)) == {}


# --- Palette ----------------------------------------------------------------------------------


def test_palette_ratios_must_add_up_to_exactly_100():
    palette = [
        {"hex": "#C2D1E6", "ratio": "23.50%"},
        {"hex": "#CDD8E9", "ratio": "20.00%"},
        {"hex": "#636574", "ratio": "55.00%"},
    ]
    assert errors_for(req(palette=palette)) == {
        "palette": ["Palette ratios add up to 98.50%, they must add up to 100.00%."]
    }


def test_palette_needs_3_to_10_colours():
    two = [{"hex": "#C2D1E6", "ratio": "50%"}, {"hex": "#CDD8E9", "ratio": "50%"}]
    assert errors_for(req(palette=two)) == {"palette": ["A palette needs 3–10 colours; this one has 2."]}
    eleven = [{"hex": "#C2D1E6", "ratio": "10%"}] * 9 + [{"hex": "#C2D1E6", "ratio": "5%"}] * 2
    assert errors_for(req(palette=eleven)) == {"palette": ["A palette needs 3–10 colours; this one has 11."]}


def test_palette_entries_need_hex_and_ratio():
    palette = [
        {"hex": "C2D1E6", "ratio": "23.51%"},
        {"hex": "#CDD8E9", "ratio": "20.13"},
        {"hex": "#636574", "ratio": "56.36%"},
    ]
    assert errors_for(req(palette=palette)) == {
        "palette": [
            "Colour 1: 'C2D1E6' is not a hex colour like #C2D1E6.",
            "Colour 2: the ratio '20.13' must be a percentage like 23.51%.",
        ]
    }


def test_palette_ratios_must_be_positive():
    palette = [
        {"hex": "#C2D1E6", "ratio": "0%"},
        {"hex": "#CDD8E9", "ratio": "50%"},
        {"hex": "#636574", "ratio": "50.00%"},
    ]
    assert errors_for(req(palette=palette)) == {"palette": ["Colour 1: the ratio must be more than 0%."]}


# --- Input images -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "inputs", "message"),
    [
        (req(), [image()], "Text-to-image takes no input images; choose edit or reference to use images."),
        (req(mode="edit"), [], "Edit needs an input image."),
        (req(mode="edit"), [image(), image()], "Edit takes exactly one image; choose reference for several."),
        (req(mode="reference"), [image()], "Reference needs at least 2 input images."),
        (req("foxapi", mode="reference"), [image()] * 5, "foxapi accepts at most 4 reference images."),
        (req("apimart", mode="reference"), [image()] * 10, "apimart accepts at most 9 reference images."),
        (
            req("apimart", mode="region-edit", boxes=[[[0, 0, 5, 5]]] + [[]] * 9),
            [image()] * 10,
            "apimart accepts at most 9 input images in region edit mode.",
        ),
        (
            req("anyfast", "doubao-seedream-4-5-251128", "storyboard"),
            [image(), image()],
            "anyfast accepts at most 1 input image in storyboard mode.",
        ),
        (req(mode="edit"), [image(200, 900)], "Image 1 is 200×900 px; each side must be 240–8000 px."),
        (req(mode="edit"), [image(8001, 4000)], "Image 1 is 8001×4000 px; each side must be 240–8000 px."),
        (
            req(mode="edit"),
            [image(250, 2100)],
            "Image 1 is 250×2100 px; its aspect ratio must be between 1:8 and 8:1.",
        ),
        (req(mode="edit"), [image(size=21 * 1024 * 1024)], "Image 1 is 21.0 MB; the limit is 20 MB."),
        (req(mode="edit"), [image(mime="application/pdf")], "Image 1 is not an image (application/pdf)."),
        (req(mode="edit"), [image(width=None)], "Image 1: its size could not be read."),
    ],
)
def test_input_image_rules(request_, inputs, message):
    assert errors_for(request_, inputs) == {"images": [message]}


def test_each_image_is_checked_with_its_number():
    errors = errors_for(req(mode="reference"), [image(), image(100, 100)])
    assert errors == {"images": ["Image 2 is 100×100 px; each side must be 240–8000 px."]}


# --- Region boxes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("boxes", "inputs", "message"),
    [
        (None, [image()], "Draw at least one box on an input image to mark the region to edit."),
        ([[]], [image()], "Draw at least one box on an input image to mark the region to edit."),
        (
            [[[0, 0, 10, 10]]],
            [image(), image()],
            "Give one list of boxes per input image: there are 2 images and 1 list.",
        ),
        (
            [[[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]],
            [image()],
            "Image 1 has 3 boxes; at most 2 per image.",
        ),
        ([[[10, 10, 10, 20]]], [image()], "Image 1, box 1: x1 must be less than x2 and y1 less than y2."),
        (
            [[], [[0, 50, 10, 40]]],
            [image(), image()],
            "Image 2, box 1: x1 must be less than x2 and y1 less than y2.",
        ),
        ([[[1500, 1100, 1700, 1150]]], [image()], "Image 1, box 1 reaches outside the 1600×1200 px image."),
        ([[[-1, 0, 10, 10]]], [image()], "Image 1, box 1 reaches outside the 1600×1200 px image."),
        ([[[0, 0, 10]]], [image()], "Image 1, box 1: a box is four whole numbers [x1, y1, x2, y2]."),
    ],
)
def test_region_edit_boxes(boxes, inputs, message):
    assert errors_for(req(mode="region-edit", boxes=boxes), inputs) == {"boxes": [message]}


def test_boxes_match_the_documented_example():
    boxes = [[], [[989, 515, 1138, 681]]]
    assert errors_for(req(mode="region-edit", boxes=boxes), [image(), image()]) == {}


# --- Several errors at once, and the request's own helpers ------------------------------------


def test_it_reports_every_field_at_once():
    errors = errors_for(req("foxapi", prompt="", n=9, seed=-5, watermark=True))
    assert set(errors) == {"prompt", "n", "seed", "watermark"}


def test_request_round_trips_through_a_dict():
    request = req(mode="region-edit", boxes=[[[1, 2, 3, 4]]], palette=PALETTE, seed=7)
    assert ImageRequest.from_dict(request.to_dict()) == request
    assert ImageRequest.from_dict({**request.to_dict(), "unknown": 1}) == request


def test_pixel_size_of_a_request():
    assert req(width=1280, height=960).pixel_size() == (1280, 960)
    assert req(size_tier="1K").pixel_size() == (1024, 1024)
    assert req().pixel_size() is None
