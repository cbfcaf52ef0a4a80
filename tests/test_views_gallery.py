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
