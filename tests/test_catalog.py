"""The catalog agrees with itself and with the gateways' documentation."""

from decimal import Decimal

import pytest

from studio.gateways import catalog

ALL_MODELS = ["wan2.7-image-pro", "wan2.7-image"]


def test_every_gateway_has_offers_and_every_offer_a_known_gateway():
    assert set(catalog.GATEWAYS) == {"anyfast", "apimart", "gccai", "foxapi"}
    for key in catalog.GATEWAYS:
        assert catalog.offers_for(key), key
    for found in catalog.OFFERS:
        assert found.gateway in catalog.GATEWAYS
        assert found.protocol == catalog.GATEWAYS[found.gateway].protocol


def test_gateways_protocols_and_asynchrony():
    assert {key: (g.protocol, g.is_async) for key, g in catalog.GATEWAYS.items()} == {
        "anyfast": ("openai-sync", False),
        "apimart": ("task-async", True),
        "gccai": ("task-async", True),
        "foxapi": ("fox-async", True),
    }


def test_which_models_each_gateway_offers():
    assert [o.model for o in catalog.offers_for("anyfast")] == [*ALL_MODELS, "doubao-seedream-4-5-251128"]
    for gateway in ("apimart", "gccai", "foxapi"):
        assert [o.model for o in catalog.offers_for(gateway)] == ALL_MODELS


def test_offer_lookup():
    assert catalog.offer("apimart", "wan2.7-image").display_name == "Wan 2.7 Image"
    assert catalog.offer("foxapi", "doubao-seedream-4-5-251128") is None
    assert catalog.offer("nowhere", "wan2.7-image") is None


def test_offers_are_unique():
    keys = [(o.gateway, o.model) for o in catalog.OFFERS]
    assert len(keys) == len(set(keys))


def test_foxapi_uses_its_own_model_ids():
    assert catalog.offer("foxapi", "wan2.7-image-pro").upstream_model == "wan-2.7-image-pro"
    assert catalog.offer("foxapi", "wan2.7-image").upstream_model == "wan-2.7-image"
    for found in catalog.OFFERS:
        if found.gateway != "foxapi":
            assert found.upstream_model == found.model


def test_documented_prices_and_not_set_prices():
    for gateway in ("apimart", "gccai"):
        assert catalog.offer(gateway, "wan2.7-image-pro").documented_price == Decimal("0.50")
        assert catalog.offer(gateway, "wan2.7-image").documented_price == Decimal("0.20")
    for gateway in ("anyfast", "foxapi"):
        for found in catalog.offers_for(gateway):
            assert found.documented_price is None, "no published price means not set, never zero"


@pytest.mark.parametrize("found", catalog.OFFERS, ids=lambda o: f"{o.gateway}-{o.model}")
def test_every_offer_has_consistent_modes(found):
    assert found.modes, "every offer has modes"
    assert found.limits(catalog.TEXT_TO_IMAGE) is not None
    assert len(found.mode_keys) == len(set(found.mode_keys))
    for limits in found.modes:
        assert limits.mode in catalog.MODES
        assert 1 <= limits.n_min <= limits.n_max
        assert 0 <= limits.min_images <= limits.max_images
        assert limits.tiers and set(limits.tiers) <= set(catalog.TIERS)
        assert set(limits.aspects) <= set(catalog.ASPECTS)
        assert limits.aspects or limits.aspect_note, "a tier-only mode says why"
        assert 0 < limits.min_pixels <= limits.max_pixels
        assert limits.options <= set(catalog.OPTION_LABELS)
        for tier in limits.tiers:
            width, height = catalog.pixel_size(tier)
            assert limits.min_pixels <= width * height <= limits.max_pixels
            for aspect in limits.aspects:
                width, height = catalog.pixel_size(tier, aspect)
                assert limits.min_pixels <= width * height <= limits.max_pixels, (tier, aspect)


def test_input_counts_per_mode():
    for found in catalog.OFFERS:
        for limits in found.modes:
            if limits.mode == catalog.TEXT_TO_IMAGE:
                assert limits.max_images == 0
            if limits.mode == catalog.EDIT:
                assert (limits.min_images, limits.max_images) == (1, 1)
            if limits.mode == catalog.REFERENCE:
                assert limits.min_images == 2
    assert catalog.offer("foxapi", "wan2.7-image").limits(catalog.REFERENCE).max_images == 4
    assert catalog.offer("apimart", "wan2.7-image").limits(catalog.REFERENCE).max_images == 9
    assert catalog.offer("anyfast", "wan2.7-image").limits(catalog.REFERENCE).max_images == 9


def test_4k_is_only_for_pro_text_to_image_on_wan():
    for found in catalog.OFFERS:
        if found.model == "doubao-seedream-4-5-251128":
            continue
        for limits in found.modes:
            pro_t2i = found.model == "wan2.7-image-pro" and limits.mode == catalog.TEXT_TO_IMAGE
            if "4K" in limits.tiers:
                assert pro_t2i and found.gateway != "foxapi"
                assert limits.max_pixels == 4096 * 4096
            else:
                assert limits.max_pixels == 2048 * 2048


def test_region_edit_and_palette_only_on_task_async():
    for found in catalog.OFFERS:
        has_region = found.limits(catalog.REGION_EDIT) is not None
        assert has_region == (found.protocol == catalog.TASK_ASYNC)
        assert found.supports(catalog.BOXES) == has_region
        assert found.supports(catalog.PALETTE) == (found.protocol == catalog.TASK_ASYNC)
        if found.protocol == catalog.TASK_ASYNC:
            assert not found.supports(catalog.PALETTE, catalog.STORYBOARD)
            assert found.supports(catalog.BOXES, catalog.REGION_EDIT)
            assert not found.supports(catalog.BOXES, catalog.EDIT)


def test_storyboards_everywhere_but_foxapi():
    for found in catalog.OFFERS:
        limits = found.limits(catalog.STORYBOARD)
        assert (limits is None) == (found.gateway == "foxapi")
    assert catalog.offer("apimart", "wan2.7-image").limits(catalog.STORYBOARD).n_max == 12
    assert catalog.offer("anyfast", "wan2.7-image").limits(catalog.STORYBOARD).n_max == 12
    assert catalog.offer("anyfast", "doubao-seedream-4-5-251128").limits(catalog.STORYBOARD).n_max == 15


def test_thinking_mode_only_for_text_to_image_without_sequential():
    for found in catalog.OFFERS:
        for mode in found.modes_with(catalog.THINKING_MODE):
            assert mode == catalog.TEXT_TO_IMAGE
    assert not catalog.offer("foxapi", "wan2.7-image").supports(catalog.THINKING_MODE)
    assert catalog.offer("apimart", "wan2.7-image").supports(catalog.THINKING_MODE, catalog.TEXT_TO_IMAGE)


def test_option_support_per_gateway():
    anyfast = catalog.offer("anyfast", "wan2.7-image")
    assert not anyfast.supports(catalog.NEGATIVE_PROMPT)
    assert anyfast.supports(catalog.B64_JSON)
    foxapi = catalog.offer("foxapi", "wan2.7-image")
    assert not foxapi.supports(catalog.WATERMARK)
    assert foxapi.supports(catalog.SAFETY_CHECKER, catalog.TEXT_TO_IMAGE)
    assert foxapi.modes_with(catalog.PROMPT_EXPANSION) == [catalog.EDIT, catalog.REFERENCE]
    assert foxapi.limits(catalog.TEXT_TO_IMAGE).n_max == 5
    assert foxapi.limits(catalog.EDIT).n_max == 4
    assert (foxapi.prompt_max, foxapi.negative_prompt_max) == (2000, 500)
    seedream = catalog.offer("anyfast", "doubao-seedream-4-5-251128")
    assert not seedream.supports(catalog.SEED)
    assert seedream.limits(catalog.EDIT).max_images == 1


def test_watermark_defaults():
    assert catalog.offer("anyfast", "doubao-seedream-4-5-251128").watermark_default is True
    assert catalog.offer("anyfast", "wan2.7-image").watermark_default is False
    assert catalog.offer("apimart", "wan2.7-image").watermark_default is False
    assert catalog.offer("foxapi", "wan2.7-image").watermark_default is None


def test_unsupported_mode_has_no_limits():
    assert catalog.offer("anyfast", "wan2.7-image").limits(catalog.REGION_EDIT) is None
    assert not catalog.offer("anyfast", "wan2.7-image").supports(catalog.SEED, catalog.REGION_EDIT)


def test_pixel_size_of_tiers_and_aspects():
    assert catalog.pixel_size("1K") == (1024, 1024)
    assert catalog.pixel_size("2K", "1:1") == (2048, 2048)
    assert catalog.pixel_size("2K", "16:9") == (2720, 1536)
    assert catalog.pixel_size("2K", "9:16") == (1536, 2720)
    assert catalog.pixel_size("1K", "3:2") == (1248, 832)
    for tier, side in catalog.TIER_SIDES.items():
        for aspect in catalog.ASPECTS:
            width, height = catalog.pixel_size(tier, aspect)
            assert width % 16 == 0 and height % 16 == 0
            assert width * height <= side * side
            across, down = catalog.parse_aspect(aspect)
            assert abs(width / height - across / down) < 0.02 * across / down
