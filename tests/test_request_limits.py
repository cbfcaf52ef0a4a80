"""Oversized bodies are refused by their declared size before they are read, and a body without
a declared size is cut off at the same limit as it is parsed."""

import io

import pytest
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.http.multipartparser import MultiPartParser
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from django.urls import reverse

from studio import request_limits
from studio.gateways import catalog
from studio.models import Upload

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


class Unread(io.RawIOBase):
    """A request body that fails the test if anyone reads it."""

    def readable(self):
        return True

    def readinto(self, buffer):
        raise AssertionError("the body was read")


def test_a_body_over_the_limit_is_refused_by_its_content_length_unread(owner_client):
    declared = 120 * MB
    response = owner_client.generic(
        "POST",
        reverse("create_upload"),
        b"",
        content_type=MULTIPART_CONTENT,
        CONTENT_LENGTH=str(declared),
        **{"wsgi.input": Unread()},
    )
    assert response.status_code == 413
    assert "each image may be at most 20 MB" in response.content.decode()
    assert not Upload.objects.exists()


def test_the_create_form_may_carry_as_many_images_as_a_mode_takes(owner_client):
    limit = request_limits.body_limit(reverse("create"))
    assert limit == catalog.INPUT_MAX_BYTES * catalog.most_input_images() + request_limits.FORM_ALLOWANCE
    assert (
        request_limits.body_limit(reverse("create_upload"))
        == catalog.INPUT_MAX_BYTES + request_limits.FORM_ALLOWANCE
    )


def test_a_body_without_a_declared_size_is_cut_off_at_the_limit(rf):
    big = SimpleUploadedFile("big.png", b"\0" * (3 * MB), content_type="image/png")
    body = encode_multipart(BOUNDARY, {"file": big})
    request = rf.generic("POST", "/create/upload/", body, content_type=MULTIPART_CONTENT)
    handlers = [request_limits.CountingUploadHandler(request, 1 * MB), TemporaryFileUploadHandler(request)]
    parser = MultiPartParser(request.META, io.BytesIO(body), handlers)
    with pytest.raises(RequestDataTooBig):
        parser.parse()


def test_a_normal_upload_still_goes_through(owner_client):
    from tests.view_helpers import image_bytes

    response = owner_client.post(
        reverse("create_upload"),
        {
            "file": SimpleUploadedFile("p.png", image_bytes(400, 400)),
            "offer": "apimart/wan2.7-image",
            "mode": "edit",
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    assert Upload.objects.count() == 1
