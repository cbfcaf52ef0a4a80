"""API keys and SECRET_KEY never appear in a page or a log line."""

import logging

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from studio import jobs
from studio.gateways import errors
from studio.gateways.request import ImageRequest
from tests.fake_upstream import FakeUpstream
from tests.test_jobs import run_to_end

KEYS = {
    "anyfast": "sk-anyfast-SECRET-1111",
    "apimart": "sk-apimart-SECRET-2222",
    "gccai": "sk-gccai-SECRET-3333",
    "foxapi": "sk-foxapi-SECRET-4444",
}
PAGES = [
    "create",
    "jobs",
    "gallery",
    "spend",
    "password_change",
    "admin:index",
    "admin:studio_job_changelist",
    "admin:studio_price_changelist",
    "admin:django_q_schedule_changelist",
]


@pytest.fixture
def keyed(settings):
    settings.STUDIO_GATEWAYS = {
        key: {"api_key": KEYS[key], "base_url": value["base_url"]}
        for key, value in settings.STUDIO_GATEWAYS.items()
    }


@pytest.mark.django_db
@pytest.mark.parametrize("name", PAGES)
def test_no_page_shows_a_secret(client, staff, keyed, name):
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    response = client.get(reverse(name), follow=True)
    assert response.status_code == 200
    body = response.content.decode()
    for key in KEYS.values():
        assert key not in body
    assert django_settings.SECRET_KEY not in body


@pytest.mark.django_db(transaction=True)
def test_no_log_line_shows_an_api_key(simulator, owner, settings, caplog):
    settings.STUDIO_GATEWAYS = {
        **settings.STUDIO_GATEWAYS,
        "apimart": {"api_key": KEYS["apimart"], "base_url": simulator.url + "/sim/apimart"},
    }
    caplog.set_level(logging.DEBUG)
    request = ImageRequest(
        gateway="apimart", model="wan2.7-image", mode="text-to-image", prompt="a key", n=1, size_tier="1K"
    )
    job = run_to_end(jobs.create_job(owner, request))
    assert job.status == "succeeded"
    assert caplog.records
    assert KEYS["apimart"] not in caplog.text


# --- a gateway that echoes the key back ------------------------------------------------------

ECHOED = "sk-live-123456"


@pytest.mark.django_db(transaction=True)
def test_an_echoed_key_never_reaches_the_job_the_pages_or_the_log(client, owner, staff, settings, caplog):
    upstream = FakeUpstream().start()
    try:
        settings.STUDIO_GATEWAYS = {
            **settings.STUDIO_GATEWAYS,
            "apimart": {"api_key": ECHOED, "base_url": upstream.url},
        }
        upstream.reply(401, {"error": {"message": f"Invalid token: Bearer {ECHOED}"}})
        caplog.set_level(logging.DEBUG)
        request = ImageRequest(
            gateway="apimart", model="wan2.7-image", mode="text-to-image", prompt="a key", n=1, size_tier="1K"
        )
        job = run_to_end(jobs.create_job(owner, request))
    finally:
        upstream.stop()
    assert upstream.requests[0].headers["Authorization"] == f"Bearer {ECHOED}"
    assert job.status == "failed"
    assert "Invalid token" in job.error_message
    assert ECHOED not in job.error_message
    assert not any(ECHOED in event.note for event in job.events.all())
    client.force_login(owner)
    for url in (reverse("jobs"), reverse("job_card", args=[job.pk])):
        body = client.get(url).content.decode()
        assert "Invalid token" in body
        assert ECHOED not in body
    staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    for url in (reverse("admin:studio_job_changelist"), reverse("admin:studio_job_change", args=[job.pk])):
        assert ECHOED not in client.get(url).content.decode()
    assert caplog.records
    assert ECHOED not in caplog.text


@pytest.mark.parametrize(
    "message, secret",
    [
        ("Invalid token: Bearer sk-live-123456", "sk-live-123456"),
        ("Invalid token: Bearer abc.DEF-ghi_123", "abc.DEF-ghi_123"),
        ("bad key sk-proj-AbCdEf0123 for this model", "sk-proj-AbCdEf0123"),
        ("the key anyfast-KEY-without-a-prefix has no balance", "anyfast-KEY-without-a-prefix"),
    ],
)
def test_gateway_messages_lose_keys_and_tokens(settings, message, secret):
    settings.STUDIO_GATEWAYS = {
        **settings.STUDIO_GATEWAYS,
        "anyfast": {"api_key": "anyfast-KEY-without-a-prefix", "base_url": "http://127.0.0.1:9"},
    }
    found = errors.error_from_body(401, {"error": {"message": message}})
    assert secret not in found.message
    assert secret not in str(found)
    assert secret not in repr(found)
    assert "[redacted]" in found.message
    for made in (
        errors.task_error({"code": "InternalError", "message": message}),
        errors.error_from_unreadable(502, message, "text/plain"),
        errors.GatewayError(errors.REJECTED, message),
    ):
        assert secret not in made.message


def test_ordinary_messages_are_left_alone():
    message = "Prompt too long: ask-me-anything is not a size; use Bearer-free words."
    assert errors.redact(message) == message
