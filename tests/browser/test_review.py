"""The cost review and the Spend page in a real browser: a staff member switches grouping, drills
down from a person's total to a job card, downloads the CSV; screenshots light and dark, wide and
phone, with no sideways scrolling on a phone."""

import csv
import io

import pytest
from django.db import transaction

from studio import ledger
from studio.models import Job
from tests.browser.conftest import log_in, watched_page
from tests.view_helpers import make_job

pytestmark = pytest.mark.browser


def settled(owner, images, **extra):
    job = make_job(owner, images=images, **extra)
    with transaction.atomic():
        ledger.hold(job)
    ledger.settle(job, images)
    return job


def test_staff_review_spend_by_person_and_drill_down_to_a_job(
    page, owner, teammate, staff, studio, screenshot
):
    mine = settled(owner, 2, prompt="A red barn")
    settled(teammate, 1, gateway="gccai", prompt="A blue boat")
    log_in(page, studio.url, "root", "root-password")
    page.goto(f"{studio.url}/review/")
    assert "alice" in page.locator("#review-table").inner_text().lower()

    page.click("[data-by=gateway]")
    page.wait_for_url("**by=gateway**")
    assert "gccai" in page.locator("#review-table").inner_text().lower()
    page.click("[data-by=user]")
    page.wait_for_url("**by=user**")

    page.click("#review-table tbody th a:text('alice')")
    page.wait_for_url("**/review/jobs/**")
    page.click(f"#review-jobs a:text('#{mine.pk}')")
    page.wait_for_url(f"**/review/jobs/{mine.pk}/")
    assert page.locator(f"#job-{mine.pk}").is_visible()

    page.goto(f"{studio.url}/review/?by=user")
    with page.expect_download() as download_info:
        page.click("[data-export]")
    download = download_info.value
    assert download.suggested_filename.startswith("cost-review-by-user-")
    rows = list(csv.reader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert rows[0][0] == "User" and rows[-1][0] == "Total"
    assert page.problems == []


LOOKS = [("light", 1280), ("dark", 1280), ("light", 390), ("dark", 390)]


@pytest.mark.parametrize(("scheme", "width"), LOOKS)
def test_review_and_spend_look_right_and_fit_a_phone(
    playwright_browser, owner, staff, studio, screenshot, scheme, width
):
    settled(owner, 2, prompt="A red barn")
    settled(staff, 1, gateway="foxapi", prompt="A green field")
    failed = make_job(owner, status=Job.FAILED, images=0)
    with transaction.atomic():
        ledger.hold(failed)
    Job.objects.filter(pk=failed.pk).update(needs_review=True)
    context = playwright_browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = watched_page(context)
    problems = page.problems
    try:
        log_in(page, studio.url, "root", "root-password")
        for name, path in (("review", "/review/"), ("spend", "/spend/")):
            page.goto(studio.url + path)
            page.wait_for_load_state("networkidle")
            screenshot(page, f"page-{name}-{scheme}-{width}")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, (path, overflow)
    finally:
        context.close()
    assert problems == []
