"""Security headers on every response, share images that stop at once, the 404 page, and server
errors logged with their traceback."""

import io
import logging
import re
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import path, reverse

from studio.models import Share
from tests.view_helpers import make_job

pytestmark = pytest.mark.django_db

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def boom(request):
    raise RuntimeError("the view fell over")


# A urlconf of its own for the error test (override_settings(ROOT_URLCONF=__name__)).
urlpatterns = [path("boom/", boom)]


@pytest.fixture
def job(owner):
    return make_job(owner, images=1)


@pytest.fixture
def share(job, owner):
    return Share.objects.create(job=job, created_by=owner)


def share_image_url(share, job, kind="full"):
    return reverse("share_image", args=[share.token, job.images.get().pk, kind])


def policy(response):
    return dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))


def test_pages_carry_a_content_security_policy_without_inline_or_eval(owner_client):
    response = owner_client.get(reverse("create"))
    directives = policy(response)
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["img-src"] == "'self' data: blob:"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'self'"
    assert directives["form-action"] == "'self'"
    assert "unsafe" not in response["Content-Security-Policy"]


def test_the_login_page_carries_it_too(client):
    assert policy(client.get(reverse("login")))["script-src"] == "'self'"


def test_htmx_is_told_not_to_eval_nor_inject_styles(owner_client):
    html = owner_client.get(reverse("jobs")).content.decode()
    config = """content='{"allowEval": false, "includeIndicatorStyles": false}'"""
    assert f'<meta name="htmx-config" {config}>' in html


@pytest.mark.parametrize("template", sorted(TEMPLATES.rglob("*.html")),
                         ids=lambda p: str(p.relative_to(TEMPLATES)))
def test_no_template_needs_inline_script_style_or_eval(template):
    text = template.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", text), "an inline <script>: move it to static/js"
    assert not re.search(r"\sstyle=", text), "a style attribute: use a class (or an SVG attribute)"
    assert "<style" not in text
    assert not re.search(r"\shx-on[:-]", text), "hx-on is evaluated JavaScript"
    assert not re.search(r"hx-trigger=\"[^\"]*\[", text), "an hx-trigger filter is evaluated JavaScript"
    assert "js:" not in text and "javascript:" not in text


def test_every_response_denies_unused_browser_features(owner_client, client, share, job):
    for response in (owner_client.get(reverse("jobs")), client.get(reverse("login")),
                     client.get(share_image_url(share, job)), client.get("/no-such-page/")):
        features = response["Permissions-Policy"]
        for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
            assert f"{feature}=()" in features


def test_a_share_image_is_revalidated_every_time(client, share, job):
    response = client.get(share_image_url(share, job))
    assert response.status_code == 200
    assert response["Cache-Control"] == "private, no-cache"
    assert response["ETag"].startswith('"')
    again = client.get(share_image_url(share, job), HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    assert again["Cache-Control"] == "private, no-cache"


def test_a_revoked_share_image_is_gone_at_once_even_for_a_cached_copy(client, share, job):
    etag = client.get(share_image_url(share, job, "thumb"))["ETag"]
    Share.objects.filter(pk=share.pk).update(revoked=True)
    assert client.get(share_image_url(share, job, "thumb"), HTTP_IF_NONE_MATCH=etag).status_code == 404


def test_a_revoked_link_shows_the_portals_own_404_page(client, share):
    Share.objects.filter(pk=share.pk).update(revoked=True)
    response = client.get(reverse("share_page", args=[share.token]))
    assert response.status_code == 404
    html = response.content.decode()
    assert "A shared link stops working when its owner revokes it" in html
    assert 'href="/static/css/studio.css"' in html
    assert f'href="{reverse("home")}"' in html


@pytest.fixture
def request_log():
    """What the django.request handler writes to stderr, caught on its way."""
    handler = logging.getLogger("django.request").handlers[0]
    caught = io.StringIO()
    original = handler.setStream(caught)
    yield caught
    handler.setStream(original)


@override_settings(ROOT_URLCONF=__name__)
def test_a_server_error_is_logged_with_traceback_path_and_user(owner_client, owner, request_log):
    owner_client.raise_request_exception = False
    response = owner_client.get("/boom/?api_key=s3cret", HTTP_AUTHORIZATION="Bearer t0ken")
    assert response.status_code == 500
    logged = request_log.getvalue()
    assert "ERROR django.request Internal Server Error: /boom/" in logged
    assert f"path=/boom/ user={owner.pk}" in logged
    assert "Traceback (most recent call last)" in logged
    assert "RuntimeError: the view fell over" in logged
    assert "s3cret" not in logged and "t0ken" not in logged


def test_not_found_is_not_logged_as_an_error(owner_client, request_log):
    assert owner_client.get("/no-such-page/").status_code == 404
    assert request_log.getvalue() == ""
