import json
import re

import pytest
from django.core.files.storage import default_storage
from django.urls import reverse

from studio.models import Image, Job, LedgerEntry, Upload
from studio.views import gallery
from tests.view_helpers import HX, hold, make_job

pytestmark = pytest.mark.django_db


def tile_ids(response):
    return [int(found) for found in re.findall(r'id="tile-(\d+)"', response.content.decode())]


@pytest.fixture
def job(owner):
    return make_job(owner, images=3, negative_prompt="blurry", seed=42)


@pytest.fixture
def image(job):
    return job.images.get(index=1)


def test_it_shows_an_empty_state(owner_client):
    response = owner_client.get(reverse("gallery"))
    assert response.status_code == 200
    assert b"Your gallery is empty" in response.content
    assert reverse("create").encode() in response.content


def gallery_order(*jobs):
    """Newest job first, each job's images in their own order (1 of 4 first)."""
    newest_first = sorted(jobs, key=lambda job: -job.pk)
    return [pk for job in newest_first for pk in job.images.order_by("index").values_list("pk", flat=True)]


def test_it_lists_only_the_users_images_newest_job_first_in_their_order(owner_client, owner, job, outsider):
    other = make_job(outsider, images=1).images.get()
    newer = make_job(owner, images=2)
    response = owner_client.get(reverse("gallery"))
    ids = [image.pk for image in response.context["images"]]
    assert ids == gallery_order(job, newer)
    assert [image.index for image in response.context["images"]] == [0, 1, 0, 1, 2]
    assert other.pk not in ids
    assert f'id="tile-{ids[0]}"'.encode() in response.content


def test_it_pages_by_keyset_with_infinite_scroll(owner_client, owner, monkeypatch):
    monkeypatch.setattr(gallery, "PAGE_SIZE", 2)
    job = make_job(owner, images=5)
    ids = gallery_order(job)
    first = owner_client.get(reverse("gallery"))
    assert [i.pk for i in first.context["images"]] == ids[:2]
    assert first.context["after"] == f"{job.pk}.1"
    assert b'hx-trigger="revealed"' in first.content
    second = owner_client.get(reverse("gallery") + f"?after={job.pk}.1", **HX)
    assert tile_ids(second) == ids[2:4]
    assert b"<html" not in second.content
    assert f"after={job.pk}.3".encode() in second.content
    last = owner_client.get(reverse("gallery") + f"?after={job.pk}.3", **HX)
    assert tile_ids(last) == ids[4:]
    assert b"revealed" not in last.content


@pytest.mark.parametrize("after", ["%C2%B2", "1e3", "99999999999999999999999.1", "3.x", "3.123456"])
def test_an_odd_cursor_is_ignored_not_a_500(owner_client, job, after):
    response = owner_client.get(reverse("gallery") + f"?after={after}")
    assert response.status_code == 200
    assert tile_ids(response) == gallery_order(job)


def test_a_page_takes_the_same_queries_whatever_its_size(owner_client, owner, django_assert_num_queries):
    make_job(owner, images=2)
    # An htmx page of tiles: session, user and ONE query for the images (no header is drawn).
    with django_assert_num_queries(3):
        owner_client.get(reverse("gallery"), **HX)
    for _ in range(4):
        make_job(owner, images=4)
    with django_assert_num_queries(3):
        response = owner_client.get(reverse("gallery"), **HX)
    assert len(tile_ids(response)) == 18
    cursor = f"{Image.objects.get(pk=tile_ids(response)[5]).job_id}.1"
    with django_assert_num_queries(3):
        owner_client.get(reverse("gallery") + f"?after={cursor}", **HX)
    # Search and filters add no query.
    with django_assert_num_queries(3):
        filters = "?q=lighthouse&model=wan2.7-image&since=2020-01-01&shared=1"
        owner_client.get(reverse("gallery") + filters, **HX)
    # The whole page adds the header's spend figures (3 queries) and the viewer's teams (1).
    with django_assert_num_queries(7):
        owner_client.get(reverse("gallery"))


def test_favourites_filter(owner_client, image):
    Image.objects.filter(pk=image.pk).update(favourite=True)
    response = owner_client.get(reverse("gallery") + "?favourites=1")
    assert [i.pk for i in response.context["images"]] == [image.pk]


def test_the_lightbox_offers_the_seed_again_or_says_there_is_none(owner_client, owner, job, image):
    html = owner_client.get(reverse("gallery_image", args=[image.pk]), **HX).content.decode()
    assert f"{reverse('create')}?remix={job.pk}&amp;seed=42" in html and "Use this seed" in html
    seedream = make_job(owner, images=1, gateway="anyfast", model="doubao-seedream-4-5-251128")
    html = owner_client.get(reverse("gallery_image", args=[seedream.images.get().pk]), **HX).content.decode()
    assert "AnyFast takes no seed for Seedream 4.5" in html


def test_favourites_empty_state(owner_client, job):
    response = owner_client.get(reverse("gallery") + "?favourites=1")
    assert b"No favourites yet" in response.content


def test_lightbox_shows_the_metadata(owner_client, job, image):
    response = owner_client.get(reverse("gallery_image", args=[image.pk]), **HX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html
    assert job.prompt in html
    assert "revised 1" in html
    assert "blurry" in html
    assert "Wan 2.7 Image" in html and "APIMart" in html
    assert "640 × 480 px" in html
    assert ">42<" in html
    assert "¥0.20 an image" in html
    assert reverse("image_file", args=[image.pk]) + "?download=1" in html
    # the images before and after for ← and →: the job's own order
    newer, older = job.images.get(index=0).pk, job.images.get(index=2).pk
    assert re.search(rf'href="{reverse("gallery_image", args=[newer])}"[^>]*data-nav="prev"', html)
    assert re.search(rf'href="{reverse("gallery_image", args=[older])}"[^>]*data-nav="next"', html)


def test_lightbox_lists_the_inputs(owner_client, owner):
    from studio.models import JobInput
    from tests.view_helpers import make_upload

    job = make_job(owner, images=1, mode="edit")
    upload = make_upload(owner)
    JobInput.objects.create(job=job, upload=upload, position=0)
    response = owner_client.get(reverse("gallery_image", args=[job.images.get().pk]), **HX)
    assert reverse("upload_file", args=[upload.pk]).encode() in response.content


def test_lightbox_without_js_is_a_page(owner_client, image):
    response = owner_client.get(reverse("gallery_image", args=[image.pk]))
    assert b"<html" in response.content
    assert b"Back to the gallery" in response.content


def test_it_toggles_favourite(owner_client, image):
    response = owner_client.post(reverse("gallery_favourite", args=[image.pk]), **HX)
    assert response.status_code == 200
    assert b'aria-pressed="true"' in response.content
    image.refresh_from_db()
    assert image.favourite
    owner_client.post(reverse("gallery_favourite", args=[image.pk]), **HX)
    image.refresh_from_db()
    assert not image.favourite


def test_use_as_reference_copies_the_image_into_a_new_upload(owner_client, owner, image):
    response = owner_client.post(reverse("gallery_reference", args=[image.pk]))
    upload = Upload.objects.get()
    assert upload.owner == owner
    assert (upload.width, upload.height) == (image.width, image.height)
    assert upload.sha256 == image.sha256
    assert response.status_code == 302
    assert response["Location"] == reverse("create") + f"?upload={upload.pk}"
    page = owner_client.get(response["Location"])
    assert f'name="upload" value="{upload.pk}"'.encode() in page.content


def test_use_as_reference_from_the_create_page_returns_a_chip(owner_client, image):
    data = {"offer": "apimart/wan2.7-image", "mode": "edit"}
    url = reverse("gallery_reference", args=[image.pk])
    response = owner_client.post(url, data, HTTP_HX_TARGET="chips", **HX)
    upload = Upload.objects.get()
    assert f'name="upload" value="{upload.pk}"'.encode() in response.content
    assert b"data-chip" in response.content


def test_delete_asks_first_without_js(owner_client, image):
    response = owner_client.get(reverse("gallery_delete", args=[image.pk]))
    assert response.status_code == 200
    assert b"Delete this image?" in response.content
    assert Image.objects.filter(pk=image.pk).exists()


def test_delete_removes_the_files_and_the_row_but_not_the_ledger(
        owner_client, job, image, django_capture_on_commit_callbacks):
    entry = hold(job)
    names = [image.file.name, image.thumbnail.name]
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("gallery_delete", args=[image.pk]), **HX)
    assert response.status_code == 200
    assert json.loads(response["HX-Trigger"]) == {"image-deleted": {"id": image.pk}}
    assert not Image.objects.filter(pk=image.pk).exists()
    assert not any(default_storage.exists(name) for name in names)
    assert LedgerEntry.objects.filter(pk=entry.pk).exists()
    assert job.images.count() == 2


def test_an_image_of_a_job_still_finishing_is_not_deleted(owner_client, job, image):
    Job.objects.filter(pk=job.pk).update(status=Job.DOWNLOADING)
    response = owner_client.post(reverse("gallery_delete", args=[image.pk]), **HX)
    assert response.status_code == 409
    assert b"still finishing" in response.content
    assert Image.objects.filter(pk=image.pk).exists()


def test_delete_without_js_redirects_to_the_gallery(owner_client, image):
    response = owner_client.post(reverse("gallery_delete", args=[image.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("gallery")


# --- access: owner sees it (above), another user gets 404, anonymous goes to login -----------

ENDPOINTS = [
    ("get", "gallery_image"),
    ("post", "gallery_favourite"),
    ("post", "gallery_reference"),
    ("get", "gallery_delete"),
    ("post", "gallery_delete"),
]


@pytest.mark.parametrize(("method", "name"), ENDPOINTS)
def test_another_user_gets_404(client, outsider, teammate, image, method, name):
    for user in (outsider, teammate):
        client.force_login(user)
        response = getattr(client, method)(reverse(name, args=[image.pk]))
        assert response.status_code == 404
    image.refresh_from_db()
    assert not image.favourite
    assert not Upload.objects.exists()


@pytest.mark.parametrize(("method", "name"), ENDPOINTS + [("get", "gallery")])
def test_anonymous_goes_to_login(client, image, method, name):
    url = reverse(name) if name == "gallery" else reverse(name, args=[image.pk])
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_staff_may_open_anyones_image(client, staff, image):
    client.force_login(staff)
    assert client.get(reverse("gallery_image", args=[image.pk]), **HX).status_code == 200


# Staff may look at anyone's image but act only on their own.
ACTIONS = [("post", "gallery_favourite"), ("post", "gallery_reference"), ("get", "gallery_delete"),
           ("post", "gallery_delete")]


@pytest.mark.parametrize(("method", "name"), ACTIONS)
def test_staff_cannot_act_on_another_users_image(client, staff, image, method, name):
    client.force_login(staff)
    assert getattr(client, method)(reverse(name, args=[image.pk])).status_code == 404
    image.refresh_from_db()
    assert not image.favourite
    assert not Upload.objects.exists()


@pytest.mark.parametrize(("method", "name"), ACTIONS)
def test_staff_act_on_their_own_image(client, staff, method, name):
    own = make_job(staff, images=1).images.get()
    client.force_login(staff)
    assert getattr(client, method)(reverse(name, args=[own.pk])).status_code in (200, 302)


# --- search, filters, several at once ------------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), [
    ("q=LIGHTHOUSE", ["lighthouse"]),
    ("gateway=foxapi", ["fox"]),
    ("model=wan2.7-image-pro", ["pro"]),
    ("mode=edit", ["edit"]),
    ("favourites=1", ["fox"]),
    ("shared=1", ["pro"]),
    ("since=2000-01-01&until=2999-01-01", ["lighthouse", "fox", "pro", "edit"]),
    ("until=2000-01-01", []),
])
def test_it_searches_and_filters(owner_client, owner, query, expected):
    make_job(owner, images=1, prompt="A lighthouse")
    fox = make_job(owner, images=1, gateway="foxapi", prompt="fox")
    pro = make_job(owner, images=1, model="wan2.7-image-pro", prompt="pro")
    make_job(owner, images=1, mode="edit", prompt="edit")
    Image.objects.filter(job=fox).update(favourite=True)
    from studio.models import Share
    Share.objects.create(job=pro, created_by=owner)
    response = owner_client.get(reverse("gallery") + "?" + query, **HX)
    prompts = [Image.objects.get(pk=pk).job.prompt for pk in tile_ids(response)]
    assert sorted(prompts) == sorted(p if p != "lighthouse" else "A lighthouse" for p in expected)


@pytest.mark.parametrize(("query", "message"), [
    ("model=dall-e", "Select a valid choice"),
    ("gateway=evil", "Select a valid choice"),
    ("mode=paint", "Select a valid choice"),
    ("since=2024-02-30", "Enter a valid date"),
    ("since=2024-03-02&until=2024-03-01", "The end date is before the start date."),
])
def test_an_unknown_filter_value_is_an_error_next_to_its_field(owner_client, job, query, message):
    response = owner_client.get(reverse("gallery") + "?" + query)
    assert response.status_code == 200
    assert tile_ids(response) == []
    html = response.content.decode()
    name = query.split("=")[0] if "until" not in query else "until"
    error = f'<span class="field-error" role="alert">{message}'
    assert f'id="filter-errors-{name}" class="filter-errors">{error}' in html


def test_the_search_reacts_to_typing_and_pasting_and_stays_in_the_url(owner_client, job):
    html = owner_client.get(reverse("gallery") + "?q=light").content.decode()
    assert "input changed delay:300ms from:#filter-q" in html and 'hx-push-url="true"' in html
    assert 'value="light"' in html
    assert "?q=light" in html  # the lightbox links keep the search


def test_a_selection_downloads_as_one_zip_with_a_manifest(owner_client, owner, outsider):
    import io
    import zipfile

    first = make_job(owner, images=2, prompt="First", negative_prompt="blurry", seed=7,
                     palette=[{"hex": "#C2D1E6", "ratio": "100.00%"}])
    second = make_job(owner, images=1, prompt="Second")
    theirs = make_job(outsider, images=1).images.get()
    chosen = [*first.images.values_list("pk", flat=True), second.images.get().pk, theirs.pk]
    response = owner_client.get(reverse("gallery_download_selection"), {"image": chosen})
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.namelist() == ["manifest.json", f"job-{second.pk}-1.png", f"job-{first.pk}-1.png",
                                  f"job-{first.pk}-2.png"]
    manifest = json.loads(archive.read("manifest.json"))["images"]
    entry = next(e for e in manifest if e["file"] == f"job-{first.pk}-2.png")
    assert entry["prompt"] == "First" and entry["negative_prompt"] == "blurry" and entry["seed"] == 7
    assert entry["palette"] == [{"hex": "#C2D1E6", "ratio": "100.00%"}] and entry["cost_cny"] == "0.2000"
    assert entry["size"] == {"width": 640, "height": 480} and entry["image"] == 2
    with first.images.get(index=1).file.open("rb") as handle:
        assert archive.read(f"job-{first.pk}-2.png") == handle.read()


def test_an_empty_selection_says_what_to_do(owner_client):
    response = owner_client.get(reverse("gallery_download_selection"))
    assert response.status_code == 400 and b"Select at least one" in response.content


def test_a_selection_is_favoured_deleted_and_shared(owner_client, owner, teammate, outsider):
    from studio.models import TeamShare

    done = make_job(owner, images=2)
    running = make_job(owner, status=Job.RUNNING, images=1, n=2)
    theirs = make_job(outsider, images=1).images.get()
    ids = [*done.images.values_list("pk", flat=True), running.images.get().pk, theirs.pk]
    back = reverse("gallery") + "?q=x"
    response = owner_client.post(reverse("gallery_favourite_selection"), {"image": ids, "back": back})
    assert response.status_code == 302 and response.url == back
    assert Image.objects.filter(favourite=True).count() == 3 and not Image.objects.get(pk=theirs.pk).favourite
    owner_client.post(reverse("gallery_team_selection"), {"image": ids})
    assert set(TeamShare.objects.values_list("job_id", flat=True)) == {done.pk, running.pk}
    response = owner_client.post(reverse("gallery_delete_selection"), {"image": ids}, follow=True)
    assert "2 images deleted. 1 of a job still running was kept." in response.content.decode()
    assert list(Image.objects.values_list("pk", flat=True).order_by("pk")) == sorted([running.images.get().pk,
                                                                                      theirs.pk])


@pytest.mark.parametrize(("method", "name"), [
    ("get", "gallery_download_selection"), ("post", "gallery_favourite_selection"),
    ("post", "gallery_delete_selection"), ("post", "gallery_team_selection"),
])
def test_selection_urls_access(client, owner, outsider, name, method):
    image = make_job(owner, images=1).images.get()
    client.force_login(outsider)
    response = getattr(client, method)(reverse(name), {"image": [image.pk]})
    assert response.status_code in (302, 400)  # nothing of theirs is selected
    assert Image.objects.filter(pk=image.pk, favourite=False).exists()
    client.logout()
    response = getattr(client, method)(reverse(name), {"image": [image.pk]})
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_the_favourite_button_tells_the_tile(owner_client, image):
    response = owner_client.post(reverse("gallery_favourite", args=[image.pk]), **HX)
    assert json.loads(response["HX-Trigger"])["favourite-changed"] == {"id": image.pk, "on": True}
