"""The portal in a real browser: create a job and watch it finish, region boxes reaching the gateway,
palette errors, and the gallery's lightbox and download."""

import json

import pytest
from django.db import transaction
from django.utils import timezone
from playwright.sync_api import expect

from studio import ledger, media
from studio import simulator as sim
from studio.models import Job, Share
from tests.browser.conftest import log_in, watched_page
from tests.conftest import wait_for
from tests.view_helpers import hold, image_bytes, make_job

pytestmark = pytest.mark.browser


def swapped(page, action):
    """Do `action` and wait until htmx has replaced the options panel."""
    page.evaluate("document.getElementById('options').dataset.stale = '1'")
    action()
    page.wait_for_function("!document.getElementById('options').dataset.stale")
    page.wait_for_load_state("networkidle")


def choose(page, offer, mode=None):
    """Pick a gateway/model and a mode, waiting for the options panel to follow."""
    swapped(page, lambda: page.select_option("#id_offer", offer))
    if mode:
        swapped(page, lambda: page.click(f"label.tab:has(input[value='{mode}'])"))
    page.wait_for_selector(f"input[name=mode][value='{mode or 'text-to-image'}']:checked")


def test_a_text_to_image_job_finishes_without_a_reload(page, owner, worker, studio, screenshot):
    log_in(page, studio.url)
    page.goto(f"{studio.url}/create/")
    page.evaluate("window.stillTheSamePage = true")
    choose(page, "apimart/wan2.7-image")
    page.fill("#id_prompt", "A lighthouse on a cliff at dusk")
    page.fill("#id_n", "2")
    page.wait_for_function("document.querySelector('#cost').textContent.includes('2 images × ¥0.20 = ¥0.40')")
    page.click("#create-submit")

    card = page.locator(".job-card").first
    card.wait_for()
    assert card.locator(".badge").inner_text() in ("Queued", "Submitting", "Running", "Downloading")
    assert card.locator(".thumb.placeholder").count() == 2  # room kept for the images to come
    page.wait_for_selector(".job-card.status-succeeded", timeout=60_000)
    assert card.locator(".percent").inner_text() == "100%"
    assert card.locator(".thumb img").count() == 2
    page.wait_for_function("[...document.querySelectorAll('.job-card .thumb img')]"
                           ".every(i => i.naturalWidth > 0)")
    assert "Charged ¥0.40" in card.locator(".job-cost").inner_text()
    # the header's spend badge followed the server's spend-changed event
    page.wait_for_function("document.querySelector('#header-spend').textContent.includes('¥0.40')")
    # no reload happened, the form kept what was typed, and polling stopped
    assert page.evaluate("window.stillTheSamePage") is True
    assert page.input_value("#id_prompt") == "A lighthouse on a cliff at dusk"
    assert page.locator("#job-poller[hx-get]").count() == 0
    job = Job.objects.get()
    assert job.status == Job.SUCCEEDED and job.images.count() == 2
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "create-job-finished")
    assert page.problems == []


def test_a_card_polls_through_quiet_answers_shows_each_image_and_ends_finished(page, owner, studio,
                                                                               screenshot):
    """The poller goes on after 204s (htmx swaps nothing on them), takes a progress part, a
    thumbnail as each image is stored, then the finished card, and stops."""
    job = make_job(owner, status=Job.RUNNING, images=0, n=2, prompt="A lighthouse, slowly")
    Job.objects.filter(pk=job.pk).update(progress=40, submitted=timezone.now())
    hold(job)
    log_in(page, studio.url)
    page.goto(f"{studio.url}/jobs/")
    card = page.locator(f"#job-{job.pk}")
    expect(card.locator(".percent")).to_have_text("40%")
    for _ in range(2):  # nothing changed, twice: the page keeps asking
        with page.expect_response(lambda answer: "/jobs/poll/" in answer.url and answer.status == 204):
            pass

    def write(**fields):
        Job.objects.filter(pk=job.pk).update(updated=timezone.now(), **fields)

    write(progress=70)
    expect(card.locator(".percent")).to_have_text("70%")
    write(status=Job.DOWNLOADING, progress=100)
    media.store_result(job, {"index": 0, "revised_prompt": ""}, image_bytes(640, 480))
    expect(card.locator(".thumb img")).to_have_count(1)
    expect(card.locator(".progress-text")).to_contain_text("1 of 2 stored")
    assert card.locator(".thumb.placeholder").count() == 1
    media.store_result(job, {"index": 1, "revised_prompt": ""}, image_bytes(640, 480))
    expect(card.locator(".thumb img")).to_have_count(2)
    with transaction.atomic():
        write(status=Job.SUCCEEDED, finished=timezone.now())
        ledger.settle(job, 2)
    page.wait_for_selector(f"#job-{job.pk}.status-succeeded")
    expect(card.locator(".job-cost")).to_contain_text("Charged ¥0.40")
    page.wait_for_function("document.querySelector('#header-spend').textContent.includes('¥0.40')")
    assert page.locator("#job-poller[hx-get]").count() == 0
    assert page.locator("[data-poll-seen]").count() == 0
    screenshot(page, "jobs-card-finished-after-quiet-polls", full_page=False)
    assert page.problems == []


def test_a_region_edit_sends_the_boxes_drawn_on_the_image(page, owner, worker, studio, screenshot, tmp_path):
    first, second = tmp_path / "street.png", tmp_path / "sky.jpg"
    first.write_bytes(image_bytes(1600, 1200))
    second.write_bytes(image_bytes(900, 900, "JPEG"))
    log_in(page, studio.url)
    page.goto(f"{studio.url}/create/")
    choose(page, "apimart/wan2.7-image-pro", "region-edit")
    page.set_input_files("#id_files", [str(first), str(second)])
    page.wait_for_selector("#chips [data-chip] [data-board] >> nth=1")
    page.wait_for_function("document.querySelectorAll('#chips [data-chip] [data-board] img').length === 2 && "
                           "[...document.querySelectorAll('#chips [data-board] img')].every(i => i.complete)")
    assert page.locator("#chips [data-chip-label]").first.inner_text() == "image 1"

    board = page.locator("#chips [data-board]").first
    box = board.bounding_box()
    assert box["width"] < 1600  # shown scaled down: coordinates must still be in image pixels
    page.mouse.move(box["x"] + box["width"] * 0.10, box["y"] + box["height"] * 0.20)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.30, box["y"] + box["height"] * 0.40, steps=5)
    page.mouse.move(box["x"] + box["width"] * 0.50, box["y"] + box["height"] * 0.60, steps=5)
    page.mouse.up()
    assert board.locator(".box").count() == 1
    drawn = json.loads(page.locator("#chips [data-boxes]").first.input_value())
    assert len(drawn) == 1
    expected = [160, 240, 800, 720]
    assert all(abs(got - want) <= 4 for got, want in zip(drawn[0], expected, strict=True)), drawn

    page.click("#chips [data-chip] >> nth=0 >> [data-insert-ref]")
    page.fill("#id_prompt", page.input_value("#id_prompt") + " becomes a garden")
    screenshot(page, "region-edit-form")
    page.click("#create-submit")
    page.locator(".job-card").first.wait_for()

    body = wait_for(lambda: sim.last_request("apimart"), timeout=30, message="the simulator's request")
    assert body["bbox_list"] == [drawn, []]
    assert len(body["image_urls"]) == 2
    assert body["prompt"].startswith("image 1")
    page.wait_for_selector(".job-card.status-succeeded", timeout=60_000)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "region-edit-finished")
    assert page.problems == []


def test_a_palette_that_does_not_add_up_shows_its_error(page, owner, studio, screenshot):
    log_in(page, studio.url)
    page.goto(f"{studio.url}/create/")
    choose(page, "apimart/wan2.7-image")
    page.fill("#id_prompt", "A quiet harbour")
    page.click("[data-add-swatch]")
    # The server balances a new palette (the same rounding the gateways get): wait for its answer.
    expect(page.locator("[data-palette-total]")).to_have_text("100.00%")
    assert page.locator("[data-swatch]").count() == 3
    page.locator("[name=palette_ratio]").first.fill("50")
    assert page.locator("[data-palette-total]").inner_text() != "100.00%"
    page.click("#create-submit")
    error = page.locator("#palette .field-error")
    error.wait_for()
    assert "must add up to 100.00%" in error.inner_text()
    assert page.locator("[data-swatch]").count() == 3  # kept as typed
    assert page.input_value("#id_prompt") == "A quiet harbour"
    assert Job.objects.count() == 0
    page.locator("#palette").scroll_into_view_if_needed()
    screenshot(page, "palette-error", full_page=False)
    # balancing fixes it
    page.click("[data-balance]")
    expect(page.locator("[data-palette-total]")).to_have_text("100.00%")
    assert [e for e in page.problems if "422" not in e] == []


def test_the_lightbox_browses_and_downloads_the_original(page, owner, studio, screenshot):
    job = make_job(owner, images=3, prompt="Three views of a red barn")
    images = list(job.images.order_by("index"))  # the gallery shows a job's images 1 of 3 first
    log_in(page, studio.url)
    page.goto(f"{studio.url}/gallery/")
    assert page.locator(".tile").count() == 3
    page.click(f"#tile-{images[0].pk}")
    dialog = page.locator("#lightbox")
    page.wait_for_selector(f"#lightbox [data-image-id='{images[0].pk}']")
    assert dialog.is_visible()
    assert "Three views of a red barn" in dialog.inner_text()
    page.wait_for_function("document.querySelector('#lightbox figure img').naturalWidth > 0")
    screenshot(page, "lightbox", full_page=False)

    page.keyboard.press("ArrowRight")
    page.wait_for_selector(f"#lightbox [data-image-id='{images[1].pk}']")
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector(f"#lightbox [data-image-id='{images[0].pk}']")

    with page.expect_download() as download_info:
        page.click("#lightbox [data-download]")
    download = download_info.value
    assert download.suggested_filename == f"image-studio-{job.pk}-{images[0].index + 1}.png"
    with images[0].file.open("rb") as handle:
        assert open(download.path(), "rb").read() == handle.read()

    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert page.problems == []


LOOKS = [("light", 1280), ("dark", 1280), ("dark", 390), ("light", 390)]


@pytest.mark.parametrize(("scheme", "width"), LOOKS)
def test_every_page_renders_cleanly_light_dark_phone(
        playwright_browser, owner, teammate, studio, screenshot, scheme, width):
    """Screenshots of each screen with real content and empty, for a look; no script errors."""
    done = make_job(owner, images=3, prompt="Three views of a red barn in the snow, early morning light")
    running = make_job(owner, status=Job.RUNNING, images=1, n=4, mode="storyboard",
                       prompt="A storyboard of a fox crossing a river")
    Job.objects.filter(pk=running.pk).update(progress=45, estimated_seconds=80, submitted=timezone.now())
    failed = make_job(owner, status=Job.FAILED, images=0, prompt="Something the gateway refused")
    Job.objects.filter(pk=failed.pk).update(
        error_message="The gateway refused the prompt (content moderation).")
    share = Share.objects.create(job=done, created_by=owner)

    context = playwright_browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = watched_page(context)
    problems = page.problems
    try:
        log_in(page, studio.url)
        for name, path in (("create", "/create/"), ("jobs", "/jobs/"), ("gallery", "/gallery/"),
                           ("share", f"/s/{share.token}/")):
            page.goto(studio.url + path)
            page.wait_for_load_state("networkidle")
            screenshot(page, f"page-{name}-{scheme}-{width}")
        page.goto(studio.url + "/jobs/")
        page.click(f"#job-{done.pk} .share > summary")
        screenshot(page, f"page-jobs-share-open-{scheme}-{width}", full_page=False)
        page.context.clear_cookies()
        log_in(page, studio.url, "bob", "bob-password")
        for name, path in (("jobs", "/jobs/"), ("gallery", "/gallery/")):
            page.goto(studio.url + path)
            screenshot(page, f"empty-{name}-{scheme}-{width}")
    finally:
        context.close()
    assert problems == []
