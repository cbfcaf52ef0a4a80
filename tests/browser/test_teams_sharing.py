"""Teams, public links and the gallery's selection in a real browser; every page at 390 px with
no sideways scroll and every pop-up inside the viewport, light and dark."""

import io
import json
import zipfile

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from studio import ledger
from studio.models import Job, Share, TeamShare
from tests.browser.conftest import log_in, watched_page
from tests.view_helpers import hold, make_job

pytestmark = pytest.mark.browser


def test_a_teammate_sees_a_shared_job_and_remixes_it_at_their_own_cost(
        playwright_browser, page, owner, teammate, worker, studio, screenshot):
    job = make_job(owner, images=2, prompt="A red barn in the snow")
    log_in(page, studio.url)
    page.goto(f"{studio.url}/jobs/")
    page.click(f"#job-{job.pk} .team > summary")
    panel = page.locator(f"#team-{job.pk}")
    panel.locator("input[name=team]").check()
    panel.locator("button[type=submit]").click()
    expect(page.locator(f"#team-{job.pk}")).to_contain_text("Saved.")
    assert TeamShare.objects.filter(job=job).count() == 1

    # the teammate, in a browser context of their own
    context = playwright_browser.new_context(viewport={"width": 1280, "height": 900})
    mate = watched_page(context)
    try:
        log_in(mate, studio.url, "bob", "bob-password")
        mate.goto(f"{studio.url}/team/")
        tiles = mate.locator(".tile")
        expect(tiles).to_have_count(2)
        expect(tiles.first.locator(".tile-author")).to_have_text("alice")
        tiles.first.locator("a").click()
        expect(mate.locator("#lightbox .lightbox-title")).to_contain_text("Image 1 of 2")
        mate.wait_for_function("document.querySelector('#lightbox figure img').naturalWidth > 0")
        assert mate.locator("#lightbox").get_by_role("button", name="Delete").count() == 0
        screenshot(mate, "team-lightbox", full_page=False)
        mate.locator("#lightbox").get_by_role("button", name="Remix").click()
        mate.wait_for_url(f"{studio.url}/create/?**")
        assert mate.input_value("#id_prompt") == "A red barn in the snow"
        mate.click("#create-submit")
        mate.wait_for_selector(".job-card.status-succeeded", timeout=60_000)
        remix = Job.objects.exclude(pk=job.pk).get()
        assert remix.owner == teammate
        mate.goto(f"{studio.url}/spend/")
        expect(mate.locator("#ledger")).to_contain_text(f"#{remix.pk}")
        expect(mate.locator(".stat").first).to_contain_text("¥0.40")
        screenshot(mate, "team-remix-spend")
        assert mate.problems == []
    finally:
        context.close()
    # the owner paid nothing for it
    page.goto(f"{studio.url}/spend/")
    expect(page.locator(".stat").first).to_contain_text("¥0.00")
    assert page.problems == []


def test_a_public_link_with_the_prompt_and_one_day_expiry(
        playwright_browser, page, owner, studio, screenshot):
    job = make_job(owner, images=2, prompt="A lighthouse at dusk")
    log_in(page, studio.url)
    page.goto(f"{studio.url}/jobs/")
    page.click(f"#job-{job.pk} .share > summary")
    panel = page.locator(f"#share-{job.pk}")
    panel.locator("input[name=include_prompt]").check()
    panel.locator("select[name=expires]").select_option("1")
    panel.locator("button[type=submit]").click()
    link = page.locator(f"#share-link-{job.pk}")
    link.wait_for()
    url = link.input_value()
    share = Share.objects.get()
    assert share.include_prompt and share.expires is not None and url.endswith(f"/s/{share.token}/")

    visitor_context = playwright_browser.new_context(viewport={"width": 390, "height": 844})
    visitor = watched_page(visitor_context)
    try:
        response = visitor.goto(url)
        assert response.status == 200
        og_image = visitor.locator("meta[property='og:image']").get_attribute("content")
        assert og_image.startswith(studio.url + f"/s/{share.token}/")
        assert visitor.request.get(og_image).status == 200  # a chat tool's preview fetches it
        assert visitor.locator("meta[name='twitter:card']").get_attribute("content") == "summary_large_image"
        assert visitor.locator("meta[property='og:title']").get_attribute("content") == "A lighthouse at dusk"
        assert visitor.locator("meta[name=robots]").get_attribute("content") == "noindex"
        expect(visitor.locator("h1")).to_have_text("A lighthouse at dusk")
        assert visitor.locator("a[download]").count() == 2
        assert "alice" not in visitor.content() and "/files/" not in visitor.content()
        screenshot(visitor, "public-link-phone")

        page.goto(f"{studio.url}/shares/")
        row = page.locator(f"#link-{share.pk}")
        expect(row).to_contain_text("prompt shown")
        expect(row.locator("td.num")).to_have_text("1")
        row.get_by_role("button", name="Revoke").click()
        page.wait_for_url(f"{studio.url}/shares/")
        expect(page.locator(f"#link-{share.pk}")).to_contain_text("Revoked")

        assert visitor.reload().status == 404
        assert visitor.problems == [e for e in visitor.problems if "404" in e]
    finally:
        visitor_context.close()
    assert page.problems == []


def test_three_images_selected_download_as_a_zip_with_a_manifest(page, owner, studio):
    first = make_job(owner, images=2, prompt="Two foxes", seed=11)
    second = make_job(owner, images=2, prompt="Two owls")
    log_in(page, studio.url)
    page.goto(f"{studio.url}/gallery/")
    boxes = page.locator("[data-select]")
    expect(boxes).to_have_count(4)
    download_button = page.get_by_role("button", name="Download zip")
    expect(download_button).to_be_disabled()
    boxes.nth(0).click()
    boxes.nth(2).click(modifiers=["Shift"])  # a range: the first three
    expect(page.locator("[data-selected-count]")).to_have_text("3 selected")
    with page.expect_download() as download_info:
        download_button.click()
    archive = zipfile.ZipFile(io.BytesIO(open(download_info.value.path(), "rb").read()))
    manifest = json.loads(archive.read("manifest.json"))["images"]
    assert [entry["file"] for entry in manifest] == [
        f"job-{second.pk}-1.png", f"job-{second.pk}-2.png", f"job-{first.pk}-1.png"]
    assert manifest[2]["prompt"] == "Two foxes" and manifest[2]["seed"] == 11
    assert len(archive.namelist()) == 4
    assert page.problems == []


def test_the_star_shows_on_the_tile_at_once_and_paste_searches(page, owner, studio):
    job = make_job(owner, images=1, prompt="A blue kite")
    make_job(owner, images=1, prompt="A green hill")
    image = job.images.get()
    log_in(page, studio.url)
    page.goto(f"{studio.url}/gallery/")
    page.click(f"#tile-{image.pk} a")
    page.locator("#lightbox .favourite-form button").click()
    expect(page.locator(f"#tile-{image.pk} .tile-fav")).to_be_visible()
    page.keyboard.press("Escape")
    # text that arrives without key presses, as a paste does, filters too
    page.focus("#filter-q")
    page.keyboard.insert_text("kite")
    expect(page.locator(".tile")).to_have_count(1)
    assert "q=kite" in page.url
    assert page.problems == []


LOOKS = [("light", 390), ("dark", 390)]


def no_sideways_scroll(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def inside_viewport(page, locator):
    box = locator.bounding_box()
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    return box and box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width \
        and box["y"] + box["height"] <= height


@pytest.mark.parametrize(("scheme", "width"), LOOKS)
def test_every_page_fits_a_phone_and_every_pop_up_the_viewport(
        playwright_browser, owner, teammate, staff, studio, screenshot, scheme, width):
    done = make_job(owner, images=3, prompt="Three views of a red barn in the snow, early morning light")
    make_job(owner, status=Job.FAILED, images=0, prompt="Something the gateway refused")
    hold(done)
    ledger.settle(done, 3)  # a charge on the Spend page's ledger, chart and breakdowns
    running = make_job(owner, status=Job.RUNNING, images=0, n=2, gateway="foxapi", model="wan2.7-image-pro",
                       prompt="A storyboard of a fox crossing a wide river at dawn, long lens")
    hold(running)
    share = Share.objects.create(job=done, created_by=owner, include_prompt=True)
    TeamShare.objects.create(job=done, team=Group.objects.get(name="Design"), shared_by=owner)
    context = playwright_browser.new_context(viewport={"width": width, "height": 844}, color_scheme=scheme)
    page = watched_page(context)
    try:
        log_in(page, studio.url)
        pages = [("create", "/create/"), ("jobs", "/jobs/"), ("gallery", "/gallery/"), ("team", "/team/"),
                 ("spend", "/spend/"), ("links", "/shares/"), ("password", "/accounts/password_change/"),
                 ("image", f"/gallery/{done.images.first().pk}/"), ("share", f"/s/{share.token}/")]
        for name, path in pages:
            page.goto(studio.url + path)
            page.wait_for_load_state("networkidle")
            assert no_sideways_scroll(page), f"{name} scrolls sideways at {width} px"
            screenshot(page, f"phone-{name}-{scheme}-{width}")

        # the job card's pop-ups: each inside the viewport, one open at a time, Esc closes
        page.goto(f"{studio.url}/jobs/")
        card = page.locator(f"#job-{done.pk}")
        for kind in ("share", "team"):
            card.locator(f".{kind} > summary").click()
            body = card.locator(f".{kind} .popover-body, .{kind} > .team-panel").first
            expect(body).to_be_visible()
            assert inside_viewport(page, body), f"the {kind} pop-up leaves the viewport"
            screenshot(page, f"phone-popup-{kind}-{scheme}-{width}", full_page=False)
            page.keyboard.press("Escape")
            expect(body).to_be_hidden()
        delete = card.locator("details.popover:has(summary.danger)")
        delete.locator("summary").click()
        body = delete.locator(".popover-body")
        assert inside_viewport(page, body), "the delete pop-up leaves the viewport"
        assert inside_viewport(page, body.locator("input[name=files]"))
        screenshot(page, f"phone-popup-delete-{scheme}-{width}", full_page=False)
        # opening another pop-up (the user menu, up in the header) closes this one
        page.locator(".user-menu > summary").click()
        assert inside_viewport(page, page.locator(".user-menu .menu"))
        assert page.locator("details.popover[open], details.user-menu[open]").count() == 1
        expect(body).to_be_hidden()
        page.keyboard.press("Escape")
        assert page.locator("details.popover[open], details.user-menu[open]").count() == 0

        # the gallery's delete confirmation
        page.goto(f"{studio.url}/gallery/")
        page.locator("[data-select]").first.click()
        page.locator(".selection-bar details > summary").click()
        assert inside_viewport(page, page.locator(".selection-bar .popover-body"))
        screenshot(page, f"phone-popup-gallery-delete-{scheme}-{width}", full_page=False)
        # the lightbox and its share pop-up
        page.keyboard.press("Escape")
        page.locator(".tile a").first.click()
        page.locator("#lightbox details.popover > summary").click()
        assert inside_viewport(page, page.locator("#lightbox details.popover .popover-body"))
        screenshot(page, f"phone-lightbox-share-{scheme}-{width}", full_page=False)
    finally:
        context.close()
    assert page.problems == []


def test_on_a_phone_ctrl_enter_creates_and_the_new_card_comes_into_view(playwright_browser, owner, studio):
    context = playwright_browser.new_context(viewport={"width": 390, "height": 844})
    page = watched_page(context)
    try:
        log_in(page, studio.url)
        page.goto(f"{studio.url}/create/")
        page.select_option("#id_offer", "gccai/wan2.7-image")
        page.wait_for_load_state("networkidle")
        page.fill("#id_prompt", "A paper boat on a puddle")
        page.focus("#id_prompt")
        page.keyboard.press("Control+Enter")
        card = page.locator(".job-card").first
        card.wait_for()
        job = Job.objects.get()
        assert job.gateway == "gccai" and job.prompt == "A paper boat on a puddle"
        page.wait_for_function(f"""(() => {{
            const box = document.getElementById('job-{job.pk}').getBoundingClientRect();
            return box.top >= 0 && box.top < window.innerHeight; }})()""")
        # a reload (and a later visit) starts from the same gateway × model, with an empty prompt
        page.reload()
        assert page.input_value("#id_offer") == "gccai/wan2.7-image"
        assert page.input_value("#id_prompt") == ""
        assert page.problems == []
    finally:
        context.close()
