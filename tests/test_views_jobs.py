import io
import json
import re
import zipfile
from datetime import UTC, timedelta

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from studio import ledger, media
from studio.models import Image, Job, JobInput, LedgerEntry, Share
from studio.templatetags import job_cards
from studio.views import jobs as job_views
from tests.view_helpers import HX, hold, image_bytes, make_job, make_upload

pytestmark = pytest.mark.django_db


CARD = re.compile(r'<article class="job-card[^"]*" id="job-(\d+)"')


def card_ids(response):
    return [int(found) for found in CARD.findall(response.content.decode())]


@pytest.fixture
def job(owner):
    return make_job(owner, images=2)


@pytest.fixture
def running(owner):
    found = make_job(owner, status=Job.RUNNING, images=0, n=2)
    Job.objects.filter(pk=found.pk).update(progress=40, estimated_seconds=60, submitted=timezone.now())
    hold(found)
    found.refresh_from_db()
    return found


# --- history --------------------------------------------------------------------------------


def test_it_shows_an_empty_state(owner_client):
    response = owner_client.get(reverse("jobs"))
    assert b"No jobs yet" in response.content
    assert reverse("create").encode() in response.content


def test_it_lists_the_users_visible_jobs_newest_first(owner_client, owner, outsider):
    older, newer = make_job(owner, images=0), make_job(owner, images=0)
    hidden = make_job(owner, images=0)
    Job.objects.filter(pk=hidden.pk).update(hidden=True)
    other = make_job(outsider, images=0)
    response = owner_client.get(reverse("jobs"))
    assert card_ids(response) == [newer.pk, older.pk]
    assert other.pk not in card_ids(response)


def test_a_card_shows_model_status_cost_and_thumbnails(owner_client, job):
    hold(job)
    ledger.settle(job, 2)
    html = owner_client.get(reverse("jobs")).content.decode()
    assert "Wan 2.7 Image" in html and "APIMart" in html and "Text to image" in html
    assert "Succeeded" in html
    assert "Charged <strong>¥0.40</strong>" in html
    for image in job.images.all():
        assert reverse("image_thumbnail", args=[image.pk]) in html
    assert reverse("job_download", args=[job.pk]) in html
    assert reverse("create") + f"?remix={job.pk}" in html


def test_an_active_card_shows_progress_eta_and_placeholders(owner_client, running):
    html = owner_client.get(reverse("jobs")).content.decode()
    assert 'aria-valuenow="40"' in html
    assert "40%" in html
    assert "left" in html
    assert "Holding <strong>¥0.40</strong>" in html
    assert html.count("thumb placeholder") == 2
    assert re.search(rf'name="seen" value="{running.pk}:[^"]+:0:running:40:\d+" data-poll-seen', html)
    assert ('id="job-poller" hx-get="/jobs/poll/" hx-trigger="every 2s" hx-include="[data-poll-seen]" '
            'hx-swap="none"') in html


def test_a_sync_card_shows_an_elapsed_timer(owner_client, owner):
    found = make_job(owner, status=Job.SUBMITTING, images=0, gateway="anyfast", model="wan2.7-image")
    html = owner_client.get(reverse("jobs")).content.decode()
    assert f'id="job-{found.pk}"' in html
    assert "data-elapsed=" in html
    assert "answers when all images are ready" in html


def test_a_failed_card_says_why_in_plain_words(owner_client, owner):
    failed = make_job(owner, status=Job.FAILED, images=0)
    Job.objects.filter(pk=failed.pk).update(error_message="The prompt was refused by moderation.")
    html = owner_client.get(reverse("jobs")).content.decode()
    assert "The prompt was refused by moderation." in html
    assert "Retry" in html


def test_no_poller_when_nothing_is_active(owner_client, job):
    html = owner_client.get(reverse("jobs")).content.decode()
    assert '<div id="job-poller"></div>' in html
    assert "data-poll-seen" not in html


@pytest.mark.parametrize(("query", "expected"), [
    ("status=failed", ["failed"]),
    ("status=active", ["running"]),
    ("gateway=foxapi", ["fox"]),
    ("model=wan2.7-image-pro", ["pro"]),
    ("mode=edit", ["edit"]),
    ("q=LIGHTHOUSE", ["lighthouse"]),
])
def test_it_filters(owner_client, owner, query, expected):
    make_job(owner, status=Job.FAILED, images=0, prompt="failed")
    make_job(owner, status=Job.RUNNING, images=0, prompt="running")
    make_job(owner, images=0, gateway="foxapi", prompt="fox")
    make_job(owner, images=0, model="wan2.7-image-pro", prompt="pro")
    make_job(owner, images=0, mode="edit", prompt="edit")
    make_job(owner, images=0, prompt="a Lighthouse at night")
    response = owner_client.get(reverse("jobs") + "?" + query, **HX)
    prompts = list(Job.objects.filter(pk__in=card_ids(response)).values_list("prompt", flat=True))
    assert [p.split()[-1] if p.startswith("a ") else p for p in prompts] == [
        "night" if e == "lighthouse" else e for e in expected]


def test_it_filters_by_date(owner_client, owner):
    old = make_job(owner, images=0)
    Job.objects.filter(pk=old.pk).update(created=timezone.now() - timedelta(days=40))
    new = make_job(owner, images=0)
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    until = (timezone.now() - timedelta(days=30)).date().isoformat()
    assert card_ids(owner_client.get(reverse("jobs") + f"?since={since}")) == [new.pk]
    assert card_ids(owner_client.get(reverse("jobs") + f"?until={until}")) == [old.pk]


@pytest.mark.parametrize("query", ["since=2024-02-30", "until=2024-13-01", "before=%C2%B2", "before=1e3",
                                   "before=99999999999999999999999"])
def test_odd_query_values_are_ignored_not_a_500(owner_client, job, query):
    response = owner_client.get(reverse("jobs") + "?" + query)
    assert response.status_code == 200
    assert card_ids(response) == [job.pk]


def test_filters_are_in_the_url_and_searched_as_you_type(owner_client, owner):
    response = owner_client.get(reverse("jobs") + "?q=cat&status=failed")
    html = response.content.decode()
    assert 'hx-push-url="true"' in html
    assert "input changed delay:300ms" in html  # typing and pasting alike
    assert 'value="cat"' in html
    assert '<option value="failed" selected>' in html
    assert "No jobs match" in html


def test_an_htmx_filter_returns_only_the_list(owner_client, job):
    response = owner_client.get(reverse("jobs") + "?q=lighthouse", **HX)
    assert b"<html" not in response.content
    assert card_ids(response) == [job.pk]


def test_it_scrolls_for_more_with_a_keyset(owner_client, owner, monkeypatch):
    monkeypatch.setattr(job_views, "PAGE_SIZE", 2)
    made = [make_job(owner, images=0, prompt=f"cat {i}") for i in range(5)]
    ids = [found.pk for found in reversed(made)]
    first = owner_client.get(reverse("jobs") + "?q=cat")
    assert card_ids(first) == ids[:2]
    assert f'hx-get="/jobs/?q=cat&amp;before={ids[1]}"' in first.content.decode()
    assert 'hx-trigger="revealed"' in first.content.decode()
    second = owner_client.get(reverse("jobs") + f"?q=cat&before={ids[1]}", **HX)
    assert card_ids(second) == ids[2:4]
    last = owner_client.get(reverse("jobs") + f"?q=cat&before={ids[3]}", **HX)
    assert card_ids(last) == ids[4:]
    assert b"revealed" not in last.content
    assert b"No jobs" not in last.content


def test_a_card_has_its_own_page(owner_client, job):
    response = owner_client.get(reverse("job_card", args=[job.pk]))
    assert response.status_code == 200
    assert f'id="job-{job.pk}"'.encode() in response.content
    fragment = owner_client.get(reverse("job_card", args=[job.pk]), **HX)
    assert b"<html" not in fragment.content


# --- polling --------------------------------------------------------------------------------

SEEN = re.compile(r'name="seen" value="([^"]+)" data-poll-seen')


def tokens(response):
    return SEEN.findall(response.content.decode())


def poll(client, seen):
    return client.get(reverse("jobs_poll"), {"seen": seen}, **HX)


def touch(job, **fields):
    """Write to the job as the pipeline does: `updated` moves with every write."""
    Job.objects.filter(pk=job.pk).update(updated=timezone.now(), **fields)


def steady(owner, **fields):
    """A running job with the gateway's progress and no expected time: nothing on its card moves
    with the clock, so only writes change it."""
    found = make_job(owner, status=Job.RUNNING, images=0, n=2)
    Job.objects.filter(pk=found.pk).update(progress=40, submitted=timezone.now(), **fields)
    hold(found)
    return found


def test_the_page_gives_each_active_card_its_token(owner_client, owner, running):
    done = make_job(owner, images=1)
    seen = tokens(owner_client.get(reverse("jobs")))
    running.refresh_from_db()
    stamp = running.updated.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert len(seen) == 1
    assert re.fullmatch(rf"{running.pk}:{stamp}:0:running:40:(55|60)", seen[0])
    assert f'id="job-{done.pk}"' in owner_client.get(reverse("jobs")).content.decode()


def test_the_poll_answers_204_when_nothing_changed(owner_client, owner):
    steady(owner), steady(owner)
    seen = tokens(owner_client.get(reverse("jobs")))
    assert len(seen) == 2
    response = poll(owner_client, seen)
    assert response.status_code == 204
    assert response.content == b""
    assert "HX-Trigger" not in response


def test_a_running_cards_new_progress_comes_alone(owner_client, owner):
    found = steady(owner)
    seen = tokens(owner_client.get(reverse("jobs")))
    touch(found, progress=70)
    response = poll(owner_client, seen)
    html = response.content.decode()
    assert response.status_code == 200
    assert f'<div class="job-progress" id="job-progress-{found.pk}" hx-swap-oob="true">' in html
    assert 'aria-valuenow="70"' in html and "70%" in html
    assert "<article" not in html and "job-poller" not in html
    assert "HX-Trigger" not in response
    # The part carries the card's new token: with it, nothing more to send.
    assert poll(owner_client, tokens(response)).status_code == 204


def test_the_clock_alone_moves_a_time_based_bar(owner_client, owner, monkeypatch):
    found = make_job(owner, status=Job.RUNNING, images=0)
    now = timezone.now()
    Job.objects.filter(pk=found.pk).update(submitted=now - timedelta(seconds=30),
                                           expected_result=now + timedelta(seconds=30))
    page = owner_client.get(reverse("jobs")).content.decode()
    assert "≈50%" in page and "about 30 s left" in page
    later = now + timedelta(seconds=20)
    monkeypatch.setattr(timezone, "now", lambda: later)
    response = poll(owner_client, SEEN.findall(page))
    html = response.content.decode()
    assert f'id="job-progress-{found.pk}" hx-swap-oob="true"' in html
    assert "≈83%" in html and "about 10 s left" in html
    assert "<article" not in html


def test_only_the_cards_that_changed_are_answered(owner_client, owner):
    same, moved, progressed = steady(owner), steady(owner), steady(owner)
    seen = tokens(owner_client.get(reverse("jobs")))
    touch(moved, status=Job.DOWNLOADING)
    touch(progressed, progress=80)
    response = poll(owner_client, seen)
    html = response.content.decode()
    assert card_ids(response) == [moved.pk]
    assert "Saving images · 0 of 2 stored" in html
    assert f'id="job-progress-{progressed.pk}" hx-swap-oob="true"' in html
    assert f'id="job-{same.pk}"' not in html and f'id="job-progress-{same.pk}"' not in html
    assert "job-poller" not in html  # still polling: the poller is left as it is


def test_each_stored_image_is_sent_as_it_arrives(owner_client, owner):
    found = make_job(owner, status=Job.DOWNLOADING, images=1, n=3)
    hold(found)
    seen = tokens(owner_client.get(reverse("jobs")))
    assert "1 of 3 stored" in owner_client.get(reverse("jobs")).content.decode()
    # The download stores an image without writing to the job: the token's count covers it.
    media.store_result(found, {"index": 1, "revised_prompt": ""}, image_bytes(640, 480))
    response = poll(owner_client, seen)
    html = response.content.decode()
    assert card_ids(response) == [found.pk]
    assert html.count('<a class="thumb"') == 2
    assert html.count("thumb placeholder") == 1
    assert "2 of 3 stored" in html
    assert poll(owner_client, tokens(response)).status_code == 204


def test_poll_stops_and_announces_spend_when_a_job_finishes(owner_client, running):
    seen = tokens(owner_client.get(reverse("jobs")))
    touch(running, status=Job.SUCCEEDED, finished=timezone.now())
    response = poll(owner_client, seen)
    html = response.content.decode()
    assert response.status_code == 286  # htmx's "stop polling"
    assert f'id="job-{running.pk}" hx-swap-oob="true"' in html
    assert '<div id="job-poller" hx-swap-oob="true"></div>' in html
    assert "data-poll-seen" not in html
    assert json.loads(response["HX-Trigger"]) == {"spend-changed": {}}


def test_a_finished_card_is_answered_while_the_others_go_on(owner_client, owner):
    done, going = steady(owner), steady(owner)
    seen = tokens(owner_client.get(reverse("jobs")))
    touch(done, status=Job.FAILED, finished=timezone.now(), error_message="The gateway refused it.")
    response = poll(owner_client, seen)
    assert response.status_code == 200
    assert card_ids(response) == [done.pk]
    assert "The gateway refused it." in response.content.decode()
    assert "job-poller" not in response.content.decode()
    assert json.loads(response["HX-Trigger"]) == {"spend-changed": {}}
    assert going.pk not in card_ids(response)


@pytest.mark.parametrize(("bad", "said"), [
    ("12", "Not a card token"),
    ("x", "Not a card token"),
    ("%C2%B2", "Not a card token"),
    ("1:2026-12-06T01:02:03Z:0:running:-:-", "Not a card token"),
    ("99999999999999999999999:2026-12-06T01:02:03.000000Z:0:running:-:-", "Not a card token"),
    ("1:2026-02-30T01:02:03.000000Z:0:running:-:-", "Not a time"),
    ("1:2026-12-06T01:02:03.000000Z:0:failed:-:-", "Not the status of an active job"),
    ("1:2026-12-06T01:02:03.000000Z:0:running:200:-", "Not a percentage"),
])
def test_a_bad_token_is_refused_with_400_and_says_why(owner_client, running, bad, said):
    good = tokens(owner_client.get(reverse("jobs")))
    response = poll(owner_client, good + [bad])
    assert response.status_code == 400
    assert said in response.content.decode()
    assert f"job-{running.pk}" not in response.content.decode()


def test_too_many_tokens_are_refused(owner_client, running):
    many = [f"{n}:2026-12-06T01:02:03.000000Z:0:running:-:-" for n in range(1, 102)]
    response = poll(owner_client, many)
    assert response.status_code == 400
    assert "At most 100 cards" in response.content.decode()


def poll_cost(client, seen):
    with CaptureQueriesContext(connection) as queries:
        response = poll(client, seen)
    return response.status_code, len(queries)


@pytest.mark.parametrize(("change", "status", "queries"), [
    ("nothing", 204, 3),  # session, user, the cards' tokens (with images stored so far)
    ("progress", 200, 3),
    ("card", 200, 8),  # and the whole cards with their money, images, share links, team shares, my teams
])
def test_the_poll_costs_the_same_queries_for_1_card_as_for_20(owner_client, owner, change, status, queries):
    made = [steady(owner) for _ in range(20)]
    for found in made:
        media.store_result(found, {"index": 0, "revised_prompt": ""}, image_bytes(64, 48))
    seen = tokens(owner_client.get(reverse("jobs")))
    assert len(seen) == 20
    for found in made:
        if change == "progress":
            touch(found, progress=90)
        elif change == "card":
            touch(found, status=Job.DOWNLOADING)
    one, twenty = poll_cost(owner_client, seen[:1]), poll_cost(owner_client, seen)
    assert one == twenty == (status, queries)


def test_the_jobs_page_costs_the_same_queries_for_1_card_as_for_20(owner_client, owner):
    for number in range(20):
        found = make_job(owner, images=1, prompt=f"cat {number}")
        hold(found)
        ledger.settle(found, 1)
    counts = []
    for query in ("?q=cat+7", ""):
        with CaptureQueriesContext(connection) as captured:
            html = owner_client.get(reverse("jobs") + query).content.decode()
        counts.append(len(captured))
        assert html.count("Charged <strong>¥0.20</strong>") == (1 if query else 20)
    assert counts[0] == counts[1]


@pytest.mark.parametrize("who", ["outsider", "teammate", "staff"])
def test_the_poll_ignores_other_peoples_cards(client, owner, request, who):
    theirs = steady(owner)
    seen = job_cards.Card(Job.objects.get(pk=theirs.pk)).seen
    touch(theirs, progress=90)
    client.force_login(request.getfixturevalue(who))
    response = poll(client, [seen])
    html = response.content.decode()
    assert response.status_code == 286
    assert f"job-{theirs.pk}" not in html and f"job-progress-{theirs.pk}" not in html
    assert '<div id="job-poller" hx-swap-oob="true"></div>' in html
    assert "HX-Trigger" not in response


def test_others_cards_among_ones_own_change_nothing(client, owner, outsider):
    theirs, mine = steady(owner), steady(outsider)
    seen = [job_cards.Card(Job.objects.get(pk=found.pk)).seen for found in (theirs, mine)]
    touch(theirs, status=Job.SUCCEEDED, finished=timezone.now())
    client.force_login(outsider)
    response = poll(client, seen)
    assert response.status_code == 204
    touch(mine, progress=55)
    html = poll(client, seen).content.decode()
    assert f'id="job-progress-{mine.pk}"' in html
    assert f"job-{theirs.pk}" not in html and f"job-progress-{theirs.pk}" not in html


# --- actions --------------------------------------------------------------------------------


def test_cancel_cancels_and_releases_the_hold(owner_client, owner):
    found = make_job(owner, status=Job.QUEUED, images=0, n=2)
    hold(found)
    response = owner_client.post(reverse("job_cancel", args=[found.pk]), **HX)
    assert response.status_code == 200
    found.refresh_from_db()
    assert found.status == Job.CANCELLED
    assert "Cancelled" in response.content.decode()
    assert json.loads(response["HX-Trigger"]) == {"spend-changed": {}}
    cost = ledger.job_cost(found)
    assert (cost.held, cost.charged) == (found.hold_amount, 0)
    assert cost.state == "nothing"
    assert "Nothing charged" in response.content.decode()
    assert "Charged" not in response.content.decode()


def test_cancel_without_js_redirects(owner_client, owner):
    found = make_job(owner, status=Job.QUEUED, images=0)
    hold(found)
    response = owner_client.post(reverse("job_cancel", args=[found.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("jobs") + f"#job-{found.pk}"


def test_retry_makes_a_new_job_with_the_same_inputs(owner_client, owner):
    upload = make_upload(owner)
    failed = make_job(owner, status=Job.FAILED, images=0, mode="edit", prompt="make it blue")
    JobInput.objects.create(job=failed, upload=upload, position=0)
    response = owner_client.post(reverse("job_retry", args=[failed.pk]), **HX)
    assert response.status_code == 200
    new = Job.objects.exclude(pk=failed.pk).get()
    assert new.status == Job.QUEUED and new.prompt == "make it blue"
    assert list(new.inputs.values_list("upload_id", flat=True)) == [upload.pk]
    html = response.content.decode()
    assert f'id="job-{new.pk}"' in html
    assert 'id="job-poller" hx-get' in html  # the new active card starts the poller


def test_retry_refused_says_why_on_the_card(owner_client, owner, settings):
    settings.STUDIO_DEFAULT_MONTHLY_BUDGET = "0.10"
    failed = make_job(owner, status=Job.FAILED, images=0, n=4)
    response = owner_client.post(reverse("job_retry", args=[failed.pk]), **HX)
    assert "monthly budget" in response.content.decode()
    assert Job.objects.count() == 1


def test_delete_hides_the_job_and_keeps_images_and_ledger(owner_client, job):
    entry = hold(job)
    response = owner_client.post(reverse("job_delete", args=[job.pk]), **HX)
    assert response.status_code == 200
    assert response.content == b""
    job.refresh_from_db()
    assert job.hidden
    assert job.images.count() == 2
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()
    assert job.pk not in card_ids(owner_client.get(reverse("jobs")))


def test_delete_with_files_removes_the_images(owner_client, job, django_capture_on_commit_callbacks):
    entry = hold(job)
    names = [name for image in job.images.all() for name in (image.file.name, image.thumbnail.name)]
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("job_delete", args=[job.pk]), {"files": "1"}, **HX)
    job.refresh_from_db()
    assert job.hidden
    assert not Image.objects.filter(job=job).exists()
    assert not any(default_storage.exists(name) for name in names)
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()


def test_delete_revokes_the_jobs_share_links(owner_client, client, owner, job):
    # Once the card is gone its owner has nowhere to revoke the link, so deleting does it.
    share = Share.objects.create(job=job, created_by=owner)
    owner_client.post(reverse("job_delete", args=[job.pk]), **HX)
    share.refresh_from_db()
    assert share.revoked
    client.logout()
    assert client.get(reverse("share_page", args=[share.token])).status_code == 404


def test_an_active_job_cannot_be_deleted(owner_client, running):
    response = owner_client.post(reverse("job_delete", args=[running.pk]), **HX)
    assert "Cancel the job before deleting it." in response.content.decode()
    running.refresh_from_db()
    assert not running.hidden


def test_download_all_streams_a_zip(owner_client, job):
    response = owner_client.get(reverse("job_download", args=[job.pk]))
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="image-studio-job-{job.pk}.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = archive.namelist()
    assert names == ["manifest.json", f"job-{job.pk}-1.png", f"job-{job.pk}-2.png"]
    with job.images.get(index=0).file.open("rb") as handle:
        assert archive.read(names[1]) == handle.read()  # byte for byte as the gateway sent it
    manifest = json.loads(archive.read("manifest.json"))["images"]
    assert [entry["file"] for entry in manifest] == names[1:]
    first = manifest[0]
    assert first["prompt"] == job.prompt and first["gateway"] == "apimart"
    assert first["model"] == "wan2.7-image"
    assert first["mode"] == "text-to-image"
    assert first["size"] == {"width": 640, "height": 480}
    assert first["cost_cny"] == "0.2000" and first["created"] and "seed" in first and first["palette"] == []


# --- access: owner sees it (above), another user gets 404, anonymous goes to login -----------

ENDPOINTS = [
    ("get", "job_card"),
    ("post", "job_cancel"),
    ("post", "job_retry"),
    ("post", "job_delete"),
    ("get", "job_download"),
]


@pytest.mark.parametrize(("method", "name"), ENDPOINTS)
def test_another_user_gets_404(client, outsider, teammate, owner, method, name):
    found = make_job(owner, status=Job.QUEUED, images=1)
    hold(found)
    for user in (outsider, teammate):
        client.force_login(user)
        assert getattr(client, method)(reverse(name, args=[found.pk]), **HX).status_code == 404
    found.refresh_from_db()
    assert found.status == Job.QUEUED and not found.hidden
    assert Job.objects.count() == 1
    assert not Share.objects.exists()


# Staff may look at anyone's job but act only on their own: a retry would be charged to the owner.
ACTIONS = ["job_cancel", "job_retry", "job_delete"]


@pytest.mark.parametrize("name", ACTIONS)
def test_staff_cannot_act_on_another_users_job(client, staff, owner, name):
    found = make_job(owner, status=Job.FAILED, images=1)
    client.force_login(staff)
    assert client.post(reverse(name, args=[found.pk]), **HX).status_code == 404
    found.refresh_from_db()
    assert found.status == Job.FAILED and not found.hidden
    assert Job.objects.count() == 1
    assert not LedgerEntry.objects.exists()


@pytest.mark.parametrize("name", ACTIONS)
def test_staff_act_on_their_own_job(client, staff, name):
    found = make_job(staff, status=Job.FAILED, images=1)
    client.force_login(staff)
    assert client.post(reverse(name, args=[found.pk]), **HX).status_code == 200


def test_staff_may_still_download_another_users_job(client, staff, owner):
    found = make_job(owner, images=1)
    client.force_login(staff)
    assert client.get(reverse("job_download", args=[found.pk])).status_code == 200


def test_the_owner_still_retries_a_failed_job(owner_client, owner):
    found = make_job(owner, status=Job.FAILED, images=0)
    assert owner_client.post(reverse("job_retry", args=[found.pk]), **HX).status_code == 200
    assert Job.objects.filter(owner=owner).count() == 2


@pytest.mark.parametrize(("method", "name"), ENDPOINTS + [("get", "jobs"), ("get", "jobs_poll")])
def test_anonymous_goes_to_login(client, owner, method, name):
    found = make_job(owner, status=Job.QUEUED, images=0)
    url = reverse(name) if name in ("jobs", "jobs_poll") else reverse(name, args=[found.pk])
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_actions_reject_get(owner_client, job):
    for name in ("job_cancel", "job_retry", "job_delete"):
        assert owner_client.get(reverse(name, args=[job.pk])).status_code == 405


# --- what the money line says ------------------------------------------------------------------


def settle(job, images):
    hold(job)
    ledger.settle(job, images)


def test_a_stopped_job_says_what_the_gateway_still_made(owner_client, owner):
    found = make_job(owner, status=Job.SUCCEEDED, images=2)
    Job.objects.filter(pk=found.pk).update(stopped_by_user=True)
    settle(found, 2)
    html = owner_client.get(reverse("job_card", args=[found.pk]), **HX).content.decode()
    assert "Stopped by you — the gateway still made 2 images (¥0.40), kept in your gallery" in html


def test_a_sent_job_offers_stop_waiting_and_says_it_will_bill(owner_client, running):
    html = owner_client.get(reverse("job_card", args=[running.pk]), **HX).content.decode()
    assert ">Stop waiting</button>" in html
    assert "The gateway cannot stop this job and will bill it." in html


def test_a_queued_job_offers_a_real_cancel(owner_client, owner):
    found = make_job(owner, status=Job.QUEUED, images=0)
    html = owner_client.get(reverse("job_card", args=[found.pk]), **HX).content.decode()
    assert ">Cancel</button>" in html and "will bill it" not in html


def test_stop_waiting_keeps_the_job_running(owner_client, running):
    response = owner_client.post(reverse("job_cancel", args=[running.pk]), **HX)
    running.refresh_from_db()
    assert running.status == Job.RUNNING and running.stopped_by_user
    assert "Stopped by you" in response.content.decode()
    assert "Stop waiting</button>" not in response.content.decode()


def test_a_partial_job_says_what_arrived_and_retries_only_the_rest(owner_client, owner):
    found = make_job(owner, status=Job.PARTIAL, images=3, n=4)
    settle(found, 3)
    html = owner_client.get(reverse("job_card", args=[found.pk]), **HX).content.decode()
    assert "3 of 4 images arrived; you paid for 3." in html
    assert "Retry the missing 1" in html


def unconfirmed(owner):
    found = make_job(owner, status=Job.FAILED, images=0, n=5)
    Job.objects.filter(pk=found.pk).update(needs_review=True, review_reason="submit may have reached it")
    hold(found)
    found.refresh_from_db()
    return found


def test_an_unconfirmed_job_shows_its_exposure_and_asks_before_a_retry(owner_client, owner):
    found = unconfirmed(owner)
    html = owner_client.get(reverse("job_card", args=[found.pk]), **HX).content.decode()
    assert "Unconfirmed: up to <strong>¥1.00</strong>" in html
    assert "The first try may also have been made and billed by the gateway (up to ¥1.00)" in html
    assert "Resolve from the gateway" not in html  # staff only
    spend = owner_client.get(reverse("spend")).content.decode()
    assert "Unconfirmed" in spend and "¥1.00" in spend


def test_staff_resolve_an_unconfirmed_job_with_a_note(client, owner, staff):
    found = unconfirmed(owner)
    client.force_login(staff)
    own = unconfirmed(staff)
    card = client.get(reverse("job_card", args=[own.pk]), **HX).content.decode()
    assert "Resolve from the gateway" in card
    refused = client.post(reverse("job_resolve", args=[found.pk]), {"images": "2", "note": ""}, **HX)
    assert "Say how you checked" in refused.content.decode()
    url = reverse("job_resolve", args=[found.pk])
    response = client.post(url, {"images": "2", "note": "billing page"}, **HX)
    assert response.status_code == 200
    found.refresh_from_db()
    assert not found.needs_review
    charge = LedgerEntry.objects.get(job=found, kind="charge")
    assert charge.recorded_by == staff and charge.note.endswith("billing page")
    assert charge.amount == found.unit_price * 2
    assert ledger.month_spend(owner) == found.unit_price * 2


def test_only_staff_may_resolve(owner_client, owner, client):
    found = unconfirmed(owner)
    url = reverse("job_resolve", args=[found.pk])
    assert owner_client.post(url, {"images": "0", "note": "x"}).status_code == 404
    client.logout()
    response = client.post(url, {"images": "0", "note": "x"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not LedgerEntry.objects.filter(job=found, kind="release").exists()
