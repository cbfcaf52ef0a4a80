"""API keys and SECRET_KEY never appear in a page or a log line."""

import logging

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from studio import jobs
from studio.gateways.request import ImageRequest
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
