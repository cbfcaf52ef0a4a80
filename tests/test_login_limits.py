"""Login rate limit (django-axes): 5 wrong passwords lock one username from one address."""

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.urls import reverse

from tests.test_settings import ROOT

pytestmark = pytest.mark.django_db

LOGIN_PAGES = ["login", "admin:login"]
ATTACKER = "203.0.113.7"
ELSEWHERE = "198.51.100.20"


def log_in(client, name, username, password, address=ATTACKER):
    return client.post(
        reverse(name), {"username": username, "password": password}, REMOTE_ADDR=address
    )


def logged_in(client):
    return "_auth_user_id" in client.session


def fail_five_times(client, name, username="alice"):
    for _ in range(5):
        response = log_in(client, name, username, "wrong-password")
        assert not logged_in(client)
    return response


@pytest.mark.parametrize("name", LOGIN_PAGES)
def test_it_locks_a_username_after_five_wrong_passwords(client, owner, staff, name):
    owner.is_staff = True  # so the admin's login would let alice in too
    owner.save()
    fail_five_times(client, name)
    response = log_in(client, name, "alice", "alice-password")
    assert response.status_code == 429
    assert not logged_in(client)
    page = response.content.decode()
    assert "locked" in page
    assert "5 wrong passwords from this address" in page
    assert "15 minutes" in page


@pytest.mark.parametrize("name", LOGIN_PAGES)
def test_four_wrong_passwords_do_not_lock(client, owner, name):
    owner.is_staff = True
    owner.save()
    for _ in range(4):
        log_in(client, name, "alice", "wrong-password")
    response = log_in(client, name, "alice", "alice-password")
    assert response.status_code == 302
    assert logged_in(client)


@pytest.mark.parametrize("name", LOGIN_PAGES)
def test_another_username_from_the_same_address_still_logs_in(client, owner, staff, name):
    fail_five_times(client, name)
    response = log_in(client, name, "root", "root-password")
    assert response.status_code == 302
    assert logged_in(client)


@pytest.mark.parametrize("name", LOGIN_PAGES)
def test_the_same_username_from_another_address_still_logs_in(client, owner, name):
    owner.is_staff = True
    owner.save()
    fail_five_times(client, name)
    response = log_in(client, name, "alice", "alice-password", address=ELSEWHERE)
    assert response.status_code == 302
    assert logged_in(client)


def test_the_lock_is_shared_by_both_login_pages(client, owner):
    owner.is_staff = True
    owner.save()
    fail_five_times(client, "login")
    response = log_in(client, "admin:login", "alice", "alice-password")
    assert response.status_code == 429
    assert not logged_in(client)


def test_the_lock_ends_after_fifteen_minutes(client, owner, settings):
    # On the database handler, where the attempt's time can be moved back; with REDIS_URL the
    # cache handler ends the lock by the key's expiry (AXES_COOLOFF_TIME) instead.
    settings.AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
    fail_five_times(client, "login")
    assert log_in(client, "login", "alice", "alice-password").status_code == 429
    locked_at = AccessAttempt.objects.get().attempt_time
    AccessAttempt.objects.update(attempt_time=locked_at - timedelta(minutes=16))
    response = log_in(client, "login", "alice", "alice-password")
    assert response.status_code == 302
    assert logged_in(client)


def test_force_login_is_not_affected(client, owner):
    fail_five_times(client, "login")
    client.force_login(owner)
    assert client.get(reverse("jobs")).status_code == 200


PRINT_AXES = """
import json
import django
from django.conf import settings
django.setup()
print(json.dumps({"AXES_HANDLER": settings.AXES_HANDLER,
                  "AXES_CACHE": settings.CACHES.get(getattr(settings, "AXES_CACHE", "default"))}))
"""


def settings_for(tmp_path, **env):
    """The axes settings as a fresh interpreter reads them from this environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIO_", "REDIS_URL"))}
    clean.update({"DJANGO_SETTINGS_MODULE": "studio.settings", "STUDIO_VAR_DIR": str(tmp_path), **env})
    result = subprocess.run([sys.executable, "-c", PRINT_AXES], cwd=ROOT, env=clean, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_failed_logins_are_counted_in_redis_when_there_is_one(tmp_path):
    assert settings_for(tmp_path)["AXES_HANDLER"] == "axes.handlers.database.AxesDatabaseHandler"
    with_redis = settings_for(tmp_path, REDIS_URL="redis://127.0.0.1:6379/0")
    assert with_redis["AXES_HANDLER"] == "axes.handlers.cache.AxesCacheHandler"
    assert with_redis["AXES_CACHE"] == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/0",
    }
