import pytest
from django.urls import reverse

from studio import media
from tests.view_helpers import image_bytes, make_job, make_upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def image(owner):
    return make_job(owner, images=1).images.get()


def body(response):
    return b"".join(response.streaming_content)


@pytest.mark.parametrize("name", ["image_file", "image_thumbnail"])
def test_it_serves_images_to_their_owner(owner_client, image, name):
    response = owner_client.get(reverse(name, args=[image.pk]))
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert body(response)


def test_the_original_is_inline_with_its_own_type(owner_client, image):
    response = owner_client.get(reverse("image_file", args=[image.pk]))
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("inline")
    with image.file.open("rb") as handle:
        assert body(response) == handle.read()


def test_download_is_an_attachment(owner_client, image):
    response = owner_client.get(reverse("image_file", args=[image.pk]) + "?download=1")
    assert response["Content-Disposition"].startswith("attachment")
    assert f"image-studio-{image.job_id}-1.png" in response["Content-Disposition"]


def test_thumbnail_is_webp(owner_client, image):
    response = owner_client.get(reverse("image_thumbnail", args=[image.pk]))
    assert response["Content-Type"] == "image/webp"


def test_until_its_thumbnail_is_made_the_original_stands_in_and_is_not_kept(owner_client, owner):
    job = make_job(owner, images=0, n=1)
    image = media.store_result(job, {"index": 0}, image_bytes(640, 480), thumbnail_later=True)
    assert not image.thumbnail
    response = owner_client.get(reverse("image_thumbnail", args=[image.pk]))
    assert response["Content-Type"] == "image/png"
    assert response["Cache-Control"] == "private, no-cache"
    with image.file.open("rb") as handle:
        assert body(response) == handle.read()

    assert media.make_thumbnail(image)
    response = owner_client.get(reverse("image_thumbnail", args=[image.pk]))
    assert response["Content-Type"] == "image/webp"
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"


@pytest.mark.parametrize("name", ["image_file", "image_thumbnail"])
def test_another_user_gets_404(client, outsider, teammate, image, name):
    for user in (outsider, teammate):
        client.force_login(user)
        assert client.get(reverse(name, args=[image.pk])).status_code == 404


@pytest.mark.parametrize("name", ["image_file", "image_thumbnail"])
def test_staff_may_see_it(client, staff, image, name):
    client.force_login(staff)
    assert client.get(reverse(name, args=[image.pk])).status_code == 200


@pytest.mark.parametrize("name", ["image_file", "image_thumbnail", "upload_file"])
def test_anonymous_goes_to_login(client, name):
    response = client.get(reverse(name, args=[1]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_it_serves_uploads_to_their_owner_only(client, owner, outsider):
    upload = make_upload(owner)
    client.force_login(owner)
    response = client.get(reverse("upload_file", args=[upload.pk]))
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"
    assert response["X-Content-Type-Options"] == "nosniff"
    client.force_login(outsider)
    assert client.get(reverse("upload_file", args=[upload.pk])).status_code == 404


def test_a_missing_file_is_404(owner_client, image):
    image.file.storage.delete(image.file.name)
    assert owner_client.get(reverse("image_file", args=[image.pk])).status_code == 404


def test_it_rejects_post(owner_client, image):
    assert owner_client.post(reverse("image_file", args=[image.pk])).status_code == 405
