"""Media go through Django's storage API: local disk by default, a private S3 bucket when
STUDIO_S3_BUCKET is set (CI runs the whole suite a third time against moto's server)."""

import io
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image as PILImage

from studio import media
from tests.conftest import s3_client

pytestmark = pytest.mark.django_db


def png_bytes():
    out = io.BytesIO()
    PILImage.new("RGB", (300, 300), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def stored_upload(owner):
    data = png_bytes()
    facts, _problem = media.read_facts(data)
    return media.store(owner, data, "photo.png", facts), data


def test_an_upload_is_written_and_read_through_the_configured_storage(owner):
    upload, data = stored_upload(owner)
    assert default_storage.exists(upload.file.name)
    assert media.stored_bytes(upload.file) == data
    local = Path(settings.MEDIA_ROOT) / upload.file.name
    if settings.STUDIO_S3_BUCKET:
        head = s3_client().head_object(Bucket=settings.STUDIO_S3_BUCKET, Key=upload.file.name)
        assert head["ContentLength"] == len(data)
        assert not local.exists()  # nothing on this machine's disk: another host can read it
    else:
        assert local.read_bytes() == data


def test_the_bucket_refuses_anyone_without_keys(owner):
    upload, _data = stored_upload(owner)
    if not settings.STUDIO_S3_BUCKET:
        # On local disk, MEDIA_URL is not served at all: only the portal's checked views.
        assert client_get_status(f"/{upload.file.name}") == 404
        return
    url = f"{settings.STUDIO_S3_ENDPOINT_URL}/{settings.STUDIO_S3_BUCKET}/{upload.file.name}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 403
    grants = s3_client().get_object_acl(Bucket=settings.STUDIO_S3_BUCKET, Key=upload.file.name)["Grants"]
    assert not [grant for grant in grants if "URI" in grant["Grantee"]]  # no AllUsers/AuthenticatedUsers


def client_get_status(path):
    from django.test import Client

    return Client().get(path).status_code


def test_the_owner_gets_the_bytes_through_the_portal_and_others_404(client, owner, outsider):
    upload, data = stored_upload(owner)
    client.force_login(owner)
    response = client.get(reverse("upload_file", args=[upload.pk]))
    assert response.status_code == 200 and b"".join(response.streaming_content) == data
    client.force_login(outsider)
    assert client.get(reverse("upload_file", args=[upload.pk])).status_code == 404


def test_a_deleted_file_answers_404_not_an_error(client, owner):
    upload, _data = stored_upload(owner)
    default_storage.delete(upload.file.name)
    assert not default_storage.exists(upload.file.name)
    client.force_login(owner)
    assert client.get(reverse("upload_file", args=[upload.pk])).status_code == 404


def test_the_public_upload_url_a_gateway_fetches_reads_from_storage(client, owner):
    upload, data = stored_upload(owner)
    path = media.public_upload_url(upload).removeprefix(settings.STUDIO_PUBLIC_URL)
    response = client.get(path)
    assert response.status_code == 200 and b"".join(response.streaming_content) == data
