import json
import re
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from studio.gateways import catalog
from studio.models import Budget, Job, JobInput, LedgerEntry, Price, Upload
from tests.view_helpers import HX, hold, image_bytes, make_job, make_upload

pytestmark = pytest.mark.django_db

APIMART = "apimart/wan2.7-image-pro"


def post(client, url, data, htmx=True):
    return client.post(url, data, **(HX if htmx else {}))


def options(client, **fields):
    return post(client, reverse("create_options"), form_data(**fields)).content.decode()


def cost(client, **fields):
    return post(client, reverse("create_cost"), form_data(**fields)).content.decode()


def submit(client, **fields):
    return post(client, reverse("create"), form_data(**fields)).content.decode()


def palette(client, **fields):
    return client.post(reverse("create_palette"), {**form_data(), **fields}, **HX).content.decode()


def form_data(**fields):
    data = {"offer": APIMART, "mode": "text-to-image", "prompt": "A lighthouse at dusk", "n": "2"}
    data.update(fields)
    return data


# --- the page -------------------------------------------------------------------------------


def test_it_lists_usable_gateways_with_prices(owner_client):
    html = owner_client.get(reverse("create")).content.decode()
    assert 'value="apimart/wan2.7-image-pro"' in html
    assert "APIMart · Wan 2.7 Image Pro · ¥0.50 an image" in html
    assert "AnyFast · Wan 2.7 Image · price not set" in html
    assert 'value="foxapi/wan2.7-image"' in html


def test_an_admin_price_shows_instead(owner_client):
    Price.objects.create(gateway="anyfast", model="wan2.7-image", unit_price="0.30")
    assert "AnyFast · Wan 2.7 Image · ¥0.30 an image" in owner_client.get(reverse("create")).content.decode()


def test_unusable_gateways_are_not_offered(owner_client, monkeypatch):
    monkeypatch.setattr("studio.forms.usable_gateways", lambda: ["gccai"])
    html = owner_client.get(reverse("create")).content.decode()
    assert 'value="gccai/wan2.7-image"' in html
    assert "apimart/" not in html and "anyfast/" not in html


def test_no_usable_gateway_says_what_to_do(owner_client, monkeypatch):
    monkeypatch.setattr("studio.forms.usable_gateways", lambda: [])
    assert b"No gateway is ready" in owner_client.get(reverse("create")).content


def test_it_shows_only_the_modes_the_model_supports(owner_client):
    html = options(owner_client, offer="anyfast/doubao-seedream-4-5-251128")
    modes = re.findall(r'name="mode" value="([a-z-]+)"', html)
    assert modes == catalog.offer("anyfast", "doubao-seedream-4-5-251128").mode_keys
    html = options(owner_client, )
    assert re.findall(r'name="mode" value="([a-z-]+)"', html) == [
        "text-to-image", "edit", "reference", "region-edit", "storyboard"]


def test_switching_model_keeps_what_was_typed(owner_client):
    data = form_data(offer="gccai/wan2.7-image", prompt="keep me", seed="77", negative_prompt="no text")
    html = post(owner_client, reverse("create_options"), data).content.decode()
    assert "keep me</textarea>" in html
    assert 'value="77"' in html
    assert "no text</textarea>" in html
    # and the cost line comes along out of band
    assert 'id="cost"' in html and 'hx-swap-oob="innerHTML"' in html


def test_a_mode_the_new_model_lacks_falls_back(owner_client):
    data = form_data(offer="foxapi/wan2.7-image", mode="region-edit")
    html = post(owner_client, reverse("create_options"), data).content.decode()
    assert 'value="text-to-image" checked' in html


def test_options_follow_the_catalog(owner_client):
    seedream = post(owner_client, reverse("create_options"),
                    form_data(offer="anyfast/doubao-seedream-4-5-251128")).content.decode()
    assert 'name="negative_prompt"' not in seedream
    assert 'name="seed"' not in seedream
    assert 'name="palette_hex"' not in seedream and "Colour palette" not in seedream
    assert 'name="width"' not in seedream
    assert 'max="1"' in seedream  # n is exactly 1 outside storyboard
    apimart = options(owner_client, )
    assert 'name="negative_prompt"' in apimart and "Colour palette" in apimart
    assert 'name="thinking_mode"' in apimart and 'name="watermark"' in apimart
    assert '<option value="4K"' in apimart
    assert 'max="4"' in apimart
    assert 'data-max="5000"' in apimart
    fox = options(owner_client, offer="foxapi/wan2.7-image")
    assert 'data-max="2000"' in fox
    assert 'name="safety_checker"' in fox and 'name="watermark"' not in fox
    edit = options(owner_client, mode="edit")
    assert '<option value="4K"' not in edit
    assert 'name="aspect"' not in edit and "aspect of the last input image" in edit


def test_foxapi_notes_that_it_needs_a_public_url(owner_client):
    html = options(owner_client, offer="foxapi/wan2.7-image", mode="edit")
    assert "STUDIO_PUBLIC_URL" in html


def test_the_size_result_comes_from_the_catalog(owner_client):
    html = cost(owner_client, size_tier="2K", aspect="16:9")
    width, height = catalog.pixel_size("2K", "16:9")
    assert f"{width} × {height} px" in html
    assert 'id="size-result" hx-swap-oob="true"' in html
    assert "1200 × 800 px" in cost(owner_client, size_kind="exact", width="1200", height="800")


# --- the cost line --------------------------------------------------------------------------


def test_the_cost_line(owner_client):
    html = cost(owner_client, n="4")
    assert "4 images × ¥0.50 = <strong>¥2.00</strong>" in html
    assert "¥100.00 left this month" in html


def test_the_cost_line_counts_what_is_held(owner_client, owner):
    hold(make_job(owner, status=Job.RUNNING, images=0, n=5))  # 5 × ¥0.20
    html = cost(owner_client, n="1")
    assert "¥99.00 left this month" in html


def test_the_cost_line_refuses_clearly_over_budget(owner_client, owner):
    Budget.objects.create(user=owner, monthly_limit="1.00")
    html = cost(owner_client, n="4")
    assert "cost-line over" in html
    assert "more than your budget has left" in html


def test_the_cost_line_without_a_price(owner_client):
    html = cost(owner_client, offer="anyfast/wan2.7-image")
    assert "Price not set" in html


# --- uploads -----------------------------------------------------------------------------


def upload(client, data, name="photo.png", offer=APIMART):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(reverse("create_upload"), {"file": SimpleUploadedFile(name, data), "offer": offer,
                                                  "mode": "edit"}, **HX)


def test_an_upload_is_stored_and_returned_as_a_chip(owner_client, owner):
    response = upload(owner_client, image_bytes(640, 480))
    stored = Upload.objects.get()
    assert stored.owner == owner and (stored.width, stored.height) == (640, 480)
    html = response.content.decode()
    assert f'<input type="hidden" name="upload" value="{stored.pk}">' in html
    assert reverse("upload_file", args=[stored.pk]) in html
    assert "data-remove-chip" in html


@pytest.mark.parametrize(("data", "name", "message"), [
    (b"hello", "photo.png", "not an image"),
    (image_bytes(100, 100), "photo.png", "each side must be 240–8000 px"),
    (image_bytes(300, 300, "JPEG"), "photo.png", "really a JPEG image"),
    (image_bytes(300, 300, "GIF"), "photo.gif", "use JPEG, PNG, BMP or WEBP"),
])
def test_a_bad_upload_says_why_next_to_its_file(owner_client, data, name, message):
    html = upload(owner_client, data, name).content.decode()
    assert message in html
    assert name in html
    assert 'name="upload"' not in html
    assert not Upload.objects.exists()


def test_a_transparent_png_for_anyfast_is_kept_with_a_warning(owner_client):
    data = image_bytes(300, 300, colour=(0, 0, 0, 0), mode="RGBA")
    html = upload(owner_client, data, offer="anyfast/wan2.7-image").content.decode()
    assert "transparent areas" in html
    assert Upload.objects.exists()


def test_an_oversized_upload_is_refused_by_its_size_without_being_read(owner_client, monkeypatch):
    from django.core.files.uploadedfile import TemporaryUploadedFile

    def read(self, *args):
        raise AssertionError("an oversized upload was read into memory")

    monkeypatch.setattr(TemporaryUploadedFile, "read", read)
    data = image_bytes(300, 300) + b"\0" * catalog.INPUT_MAX_BYTES
    html = upload(owner_client, data).content.decode()
    assert "the limit is 20 MB" in html
    assert not Upload.objects.exists()
    html = palette(owner_client, palette_image=SimpleUploadedFile("big.png", data))
    assert "the limit is 20 MB" in html
    html = submit(owner_client, mode="edit", files=[SimpleUploadedFile("big.png", data)])
    assert "big.png: It is 20.0 MB; the limit is 20 MB" in html
    assert not Job.objects.exists()


def test_an_upload_without_a_file(owner_client):
    response = owner_client.post(reverse("create_upload"), {"offer": APIMART}, **HX)
    assert response.status_code == 400


def test_an_earlier_upload_comes_back_as_a_chip(owner_client, owner):
    earlier = make_upload(owner)
    url = reverse("create_upload_chip", args=[earlier.pk])
    response = owner_client.get(f"{url}?offer={APIMART}&mode=edit", **HX)
    assert f'name="upload" value="{earlier.pk}"' in response.content.decode()
    plain = owner_client.get(reverse("create_upload_chip", args=[earlier.pk]))
    assert plain["Location"] == reverse("create") + f"?upload={earlier.pk}"


def test_recent_lists_uploads_and_gallery_images(owner_client, owner, outsider):
    mine = make_upload(owner)
    theirs = make_upload(outsider)
    image = make_job(owner, images=1).images.get()
    html = owner_client.get(reverse("create_recent"), **HX).content.decode()
    assert reverse("create_upload_chip", args=[mine.pk]) in html
    assert reverse("create_upload_chip", args=[theirs.pk]) not in html
    assert reverse("gallery_reference", args=[image.pk]) in html


def test_recent_when_there_is_nothing(owner_client):
    assert b"Nothing to reuse yet" in owner_client.get(reverse("create_recent"), **HX).content


# --- palette ---------------------------------------------------------------------------------


def test_a_palette_from_an_uploaded_file(owner_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = owner_client.post(reverse("create_palette"), {**form_data(),
                                 "palette_image": SimpleUploadedFile("p.png", image_bytes(400, 400))}, **HX)
    html = response.content.decode()
    ratios = re.findall(r'name="palette_ratio" value="([\d.]+)"', html)
    assert len(ratios) >= 3
    assert sum(float(r) * 100 for r in ratios) == pytest.approx(10000)
    assert 'name="palette_hex" value="#' in html


def test_a_palette_from_an_attached_upload(owner_client, owner):
    mine = make_upload(owner)
    html = palette(owner_client, from_upload=mine.pk)
    assert html.count('name="palette_hex"') >= 3


def test_a_palette_from_a_flat_image_says_why(owner_client, owner):
    flat = make_upload(owner, mode="L", colour=100)
    html = palette(owner_client, from_upload=flat.pk)
    assert "fewer than 3 distinct colours" in html


def test_balancing_a_palette_is_the_servers_rounding(owner_client):
    html = owner_client.post(reverse("create_palette"), {
        **form_data(), "balance": "1",
        "palette_hex": ["#ff0000", "#00ff00", "#0000ff"], "palette_ratio": ["50", "25", "10"],
    }, **HX).content.decode().split("<template")[0]  # the blank swatch template aside
    ratios = re.findall(r'name="palette_ratio" value="([\d.]+)"', html)
    assert ratios == ["58.82", "29.41", "11.77"]  # largest remainder: exactly 100.00 in all
    assert re.findall(r'name="palette_hex" value="(#\w+)"', html) == ["#ff0000", "#00ff00", "#0000ff"]


def test_balancing_a_palette_of_nothing_usable_gives_equal_shares(owner_client):
    html = owner_client.post(reverse("create_palette"), {
        **form_data(), "balance": "1",
        "palette_hex": ["#ff0000", "#00ff00", "#0000ff"], "palette_ratio": ["0", "x", "-4"],
    }, **HX).content.decode().split("<template")[0]
    assert re.findall(r'name="palette_ratio" value="([\d.]+)"', html) == ["33.34", "33.33", "33.33"]


def test_limits_on_the_page_come_from_the_catalog(owner_client):
    html = options(owner_client, offer="apimart/wan2.7-image", mode="region-edit")
    assert f'data-max-boxes="{catalog.BOXES_PER_IMAGE}"' in html
    page = owner_client.get(reverse("create")).content.decode()
    assert f'data-max="{catalog.SEED_MAX}"' in page
    assert f'data-min="{catalog.PALETTE_MIN_COLOURS}" data-max="{catalog.PALETTE_MAX_COLOURS}"' in page
    assert f"{catalog.INPUT_MIN_SIDE}–{catalog.INPUT_MAX_SIDE} px a side" in html


def test_a_mode_has_one_wording_on_the_form_and_the_card(owner_client, owner):
    html = options(owner_client, offer="apimart/wan2.7-image", mode="edit")
    assert catalog.MODES["edit"].title in html
    make_job(owner, mode="edit")
    assert catalog.MODES["edit"].title in owner_client.get(reverse("jobs")).content.decode()


# --- submitting --------------------------------------------------------------------------------


def test_it_creates_a_job_and_returns_its_card(owner_client, owner, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        data = form_data(n="2", seed="5", size_tier="2K", aspect="16:9")
        response = post(owner_client, reverse("create"), data)
    job = Job.objects.get()
    assert job.owner == owner and job.status == Job.QUEUED and job.n_requested == 2
    assert job.request["seed"] == 5 and job.request["size_tier"] == "2K" and job.request["aspect"] == "16:9"
    assert job.request["watermark"] is None and job.request["thinking_mode"] is None
    assert len(callbacks) == 1  # the submit task, once the transaction commits
    html = response.content.decode()
    assert f'id="job-{job.pk}"' in html
    assert 'id="job-poller" hx-get' in html and 'hx-swap-oob="true"' in html
    triggers = json.loads(response["HX-Trigger"])
    assert "spend-changed" in triggers and triggers["job-created"] == {"id": job.pk}
    assert LedgerEntry.objects.get(job=job).kind == LedgerEntry.HOLD


def test_without_js_it_redirects_to_the_jobs_page(owner_client):
    response = post(owner_client, reverse("create"), form_data(), htmx=False)
    assert response.status_code == 302 and response["Location"] == reverse("jobs")
    assert Job.objects.count() == 1


def test_tri_state_options_are_sent_only_when_set(owner_client):
    post(owner_client, reverse("create"), form_data(watermark="on", thinking_mode="off"))
    request = Job.objects.get().request
    assert request["watermark"] is True and request["thinking_mode"] is False


def test_errors_keep_every_value_and_upload_and_charge_nothing(owner_client, owner):
    kept = make_upload(owner)
    data = form_data(mode="edit", prompt="", n="9", negative_prompt="nothing odd", upload=[kept.pk])
    response = post(owner_client, reverse("create"), data)
    assert not Job.objects.exists() and not LedgerEntry.objects.exists()
    assert response["HX-Retarget"] == "#create-form" and response["HX-Reswap"] == "outerHTML"
    html = response.content.decode()
    assert "Nothing was queued or charged" in html
    assert 'value="9"' in html
    assert "nothing odd</textarea>" in html
    assert f'name="upload" value="{kept.pk}"' in html
    assert "makes 1–4 images per request, not 9" in html
    assert 'value="edit" checked' in html


@pytest.mark.parametrize(("fields", "words"), [
    ({"n": "0"}, "images per request, not 0"),
    ({"n": "-3"}, "images per request, not -3"),
    ({"n": "two"}, "must be a whole number"),
    ({"offer": "evil/wan2.7-image"}, "There is no gateway called 'evil'"),
    ({"offer": "apimart/gpt-image-1"}, "apimart does not offer 'gpt-image-1'"),
    ({"mode": "paint"}, "There is no mode called 'paint'"),
    ({"watermark": "maybe"}, "not 'maybe'"),
])
def test_nothing_is_guessed_an_unknown_value_is_refused(owner_client, fields, words):
    html = unescape(submit(owner_client, **fields))
    assert "The job was not created" in html
    assert words in html
    assert Job.objects.count() == 0 and LedgerEntry.objects.count() == 0


def test_the_cost_line_never_shows_negative_money(owner_client, owner):
    html = cost(owner_client, n="-3")
    assert "¥-" not in html
    assert "images per request, not -3" in html
    Budget.objects.create(user=owner, monthly_limit="1.00")
    hold(make_job(owner, status=Job.RUNNING, images=0, n=5))  # 5 × ¥0.20 held, then the budget was lowered
    Budget.objects.filter(user=owner).update(monthly_limit="0.70")
    html = cost(owner_client, n="1")
    assert "¥-" not in html
    assert "¥0.00 left this month (over budget by ¥0.30)" in html


def test_a_prompt_error_sits_next_to_the_prompt(owner_client):
    html = submit(owner_client, prompt="")
    prompt_at = html.index('name="prompt"')
    error_at = html.index("Write a prompt.")
    size_at = html.index("<legend>Size</legend>")
    assert prompt_at < error_at < size_at


def test_a_palette_that_does_not_add_up_shows_its_error(owner_client):
    data = form_data(palette_hex=["#ff0000", "#00ff00", "#0000ff"], palette_ratio=["30", "30", "30"])
    html = post(owner_client, reverse("create"), data).content.decode()
    assert "Palette ratios add up to 90.00%, they must add up to 100.00%." in html
    assert html.count('name="palette_hex"') == 3 + 1  # the three kept, plus the template's
    assert not Job.objects.exists()


def test_a_palette_that_adds_up_is_sent(owner_client):
    data = form_data(palette_hex=["#ff0000", "#00ff00", "#0000ff"], palette_ratio=["33.34", "33.33", "33.33"])
    post(owner_client, reverse("create"), data)
    assert Job.objects.get().request["palette"] == [
        {"hex": "#FF0000", "ratio": "33.34%"}, {"hex": "#00FF00", "ratio": "33.33%"},
        {"hex": "#0000FF", "ratio": "33.33%"}]


def test_over_budget_is_refused_next_to_n(owner_client, owner):
    Budget.objects.create(user=owner, monthly_limit="0.50")
    html = submit(owner_client, n="4")
    assert "but only ¥0.50 is left of your monthly budget" in html
    assert not Job.objects.exists() and not LedgerEntry.objects.exists()


def test_a_region_edit_sends_boxes_in_image_pixels(owner_client, owner):
    first, second = make_upload(owner, 800, 600), make_upload(owner, 400, 400)
    data = form_data(mode="region-edit", upload=[first.pk, second.pk],
                     **{f"boxes_{first.pk}": "[[10, 20, 300, 400]]", f"boxes_{second.pk}": "[]"})
    post(owner_client, reverse("create"), data)
    job = Job.objects.get()
    assert job.request["boxes"] == [[[10, 20, 300, 400]], []]
    inputs = list(job.inputs.values_list("upload_id", "boxes"))
    assert inputs == [(first.pk, [[10, 20, 300, 400]]), (second.pk, [])]


def test_a_region_edit_without_boxes_is_refused(owner_client, owner):
    first = make_upload(owner)
    html = submit(owner_client, mode="region-edit", upload=[first.pk])
    assert "Draw at least one box" in html


def test_uploads_are_rechecked_against_the_chosen_gateway(owner_client, owner):
    small = make_upload(owner, 300, 300)
    Upload.objects.filter(pk=small.pk).update(width=100)  # as if limits had changed since
    html = submit(owner_client, mode="edit", upload=[small.pk])
    assert "It is 100×300 px" in html
    assert "Remove or replace the images marked below." in html
    assert not Job.objects.exists()


def test_someone_elses_upload_is_ignored(owner_client, outsider):
    theirs = make_upload(outsider)
    html = submit(owner_client, mode="edit", upload=[theirs.pk])
    assert "needs an input image" in html
    assert not Job.objects.exists()


def test_files_sent_with_the_form_without_js(owner_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = form_data(mode="edit", files=[SimpleUploadedFile("a.png", image_bytes(500, 500))])
    response = owner_client.post(reverse("create"), data)
    assert response.status_code == 302
    job = Job.objects.get()
    assert job.inputs.count() == 1


def test_bad_files_sent_without_js_are_reported(owner_client):
    from django.core.files.uploadedfile import SimpleUploadedFile

    data = form_data(mode="edit", files=[SimpleUploadedFile("a.png", b"nope")])
    html = owner_client.post(reverse("create"), data).content.decode()
    assert "a.png: It is not an image" in html
    assert not Job.objects.exists()


# --- remix and reuse -----------------------------------------------------------------------------


def test_remix_fills_the_form_from_the_job(owner_client, owner):
    source = make_upload(owner)
    job = make_job(owner, images=1, mode="region-edit", prompt="swap the sky", seed=9,
                   boxes=[[[1, 2, 30, 40]]], model="wan2.7-image-pro", watermark=True)
    JobInput.objects.create(job=job, upload=source, position=0, boxes=[[1, 2, 30, 40]])
    html = owner_client.get(reverse("create") + f"?remix={job.pk}").content.decode()
    assert "swap the sky</textarea>" in html
    assert 'value="region-edit" checked' in html
    assert 'value="apimart/wan2.7-image-pro" selected' in html
    assert f'name="upload" value="{source.pk}"' in html
    assert "[[1, 2, 30, 40]]" in html
    assert 'name="seed" min="0"' in html and 'value="9"' in html
    assert 'name="watermark" value="on" checked' in html


def test_arriving_with_an_upload_opens_an_image_mode(owner_client, owner):
    mine = make_upload(owner)
    html = owner_client.get(reverse("create") + f"?upload={mine.pk}").content.decode()
    assert 'value="edit" checked' in html
    assert f'name="upload" value="{mine.pk}"' in html


# --- access -------------------------------------------------------------------------------------


def test_use_this_seed_fills_and_locks_the_seed(owner_client, owner):
    job = make_job(owner, seed=1234)
    html = owner_client.get(reverse("create") + f"?remix={job.pk}&seed=987654").content.decode()
    assert 'name="seed" min="0"' in html and 'value="987654"' in html
    assert 'name="seed_lock" value="1" checked' in html


def test_a_remix_picks_a_new_seed_when_the_portal_picked_the_first(owner_client, owner):
    job = make_job(owner, seed=1234)
    Job.objects.filter(pk=job.pk).update(request={**job.request, "seed_picked": True})
    html = owner_client.get(reverse("create") + f"?remix={job.pk}").content.decode()
    assert 'value="1234"' not in html
    assert 'name="seed_lock" value="1" checked' not in html


def test_an_empty_seed_is_picked_and_recorded(owner_client):
    submit(owner_client, offer="apimart/wan2.7-image", seed="")
    job = Job.objects.get()
    assert isinstance(job.request["seed"], int) and job.request["seed_picked"] is True


@pytest.mark.parametrize("query", ["remix=%C2%B2", "upload=%C2%B2", "upload=99999999999999999999999"])
def test_odd_ids_in_the_query_string_are_ignored(owner_client, query):
    assert owner_client.get(reverse("create") + "?" + query).status_code == 200


@pytest.mark.parametrize("fields", [
    {"palette_hex": "#112233", "palette_ratio": "Infinity"},
    {"palette_hex": "#112233", "palette_ratio": "1e40"},
    {"palette_hex": "#112233", "palette_ratio": "sNaN"},
    {"upload": "\u00b2"},
])
def test_malformed_values_are_kept_as_typed_not_a_500(owner_client, fields):
    for name in ("create_options", "create_cost", "create"):
        assert post(owner_client, reverse(name), form_data(**fields)).status_code == 200


def test_boxes_out_of_range_are_dropped(owner_client, owner):
    first = make_upload(owner, 800, 600)
    data = form_data(mode="region-edit", upload=[first.pk], **{f"boxes_{first.pk}": "[[1e999, 0, 10, 10]]"})
    assert post(owner_client, reverse("create_options"), data).status_code == 200
    assert "Draw at least one box" in submit(owner_client, **data)


def test_another_users_things_are_404(client, owner, outsider, teammate):
    job = make_job(owner, images=0)
    mine = make_upload(owner)
    for user in (outsider, teammate):
        client.force_login(user)
        assert client.get(reverse("create") + f"?remix={job.pk}").status_code == 404
        assert client.get(reverse("create_upload_chip", args=[mine.pk]), **HX).status_code == 404
        response = client.post(reverse("create_palette"), {**form_data(), "from_upload": mine.pk}, **HX)
        assert response.status_code == 404
        html = client.get(reverse("create") + f"?upload={mine.pk}").content.decode()
        assert f'name="upload" value="{mine.pk}"' not in html


@pytest.mark.parametrize(("method", "name"), [
    ("get", "create"), ("post", "create"), ("post", "create_options"), ("post", "create_cost"),
    ("post", "create_upload"), ("get", "create_recent"), ("post", "create_palette"),
])
def test_anonymous_goes_to_login(client, method, name):
    response = getattr(client, method)(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not Job.objects.exists()


def test_anonymous_upload_chip_goes_to_login(client, owner):
    response = client.get(reverse("create_upload_chip", args=[make_upload(owner).pk]))
    assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("name", ["create_options", "create_cost", "create_upload", "create_palette"])
def test_fragments_reject_get(owner_client, name):
    assert owner_client.get(reverse(name)).status_code == 405


# --- the form remembers; shared with my team --------------------------------------------------


def test_the_form_remembers_the_last_choices_but_not_the_prompt(owner_client):
    options(owner_client, offer="foxapi/wan2.7-image", mode="text-to-image", size_tier="2K", aspect="16:9",
            watermark="off", prompt="A secret plan")
    html = owner_client.get(reverse("create")).content.decode()
    assert re.search(r'<option value="foxapi/wan2.7-image"[^>]*selected', html)
    assert re.search(r'value="2K"[^>]*checked|value="2K"[^>]*selected', html)
    assert "A secret plan" not in html


def test_the_form_remembers_across_visits_after_a_job(client, owner):
    client.force_login(owner)
    post(client, reverse("create"), form_data(offer="gccai/wan2.7-image", n="3"))
    client.logout()
    client.force_login(owner)
    html = client.get(reverse("create")).content.decode()
    assert re.search(r'<option value="gccai/wan2.7-image"[^>]*selected', html)
    assert re.search(r'name="n"[^>]*value="3"|value="3"[^>]*name="n"', html)
    assert re.search(r'<textarea[^>]*id="id_prompt"[^>]*>\s*</textarea>', html)  # the prompt starts empty


def test_a_job_can_be_created_shared_with_my_team(owner_client, owner, teammate):
    from studio.models import TeamShare

    html = owner_client.get(reverse("create")).content.decode()
    assert 'name="share_team"' in html and "Design" in html
    post(owner_client, reverse("create"), form_data(share_team="1"))
    job = Job.objects.get()
    assert TeamShare.objects.get(job=job).team.name == "Design"
    post(owner_client, reverse("create"), form_data())
    assert TeamShare.objects.count() == 1


def test_without_a_team_there_is_no_team_box(owner_client):
    assert 'name="share_team"' not in owner_client.get(reverse("create")).content.decode()
