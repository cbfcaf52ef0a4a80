import re

import pytest
from django.http import Http404
from django.urls import URLResolver, get_resolver, resolve, reverse
from django.urls.resolvers import RoutePattern

from studio.access import get_own_or_404, get_owned_or_404
from studio.models import Job
from tests.view_helpers import make_job

# Every screen behind login; each later screen adds itself here.
PRIVATE_URLS = ["home", "create", "jobs", "gallery", "spend", "spend_badge", "password_change"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", PRIVATE_URLS)
def test_it_sends_anonymous_users_to_login(client, name):
    url = reverse(name)
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert f"next={url}" in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", PRIVATE_URLS)
def test_it_serves_logged_in_users(owner_client, name):
    response = owner_client.get(reverse(name), follow=True)
    assert response.status_code == 200


@pytest.mark.django_db
def test_login_page_is_public(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b"Log in" in response.content


@pytest.mark.django_db
def test_it_logs_in_and_out(client, owner):
    response = client.post(reverse("login"), {"username": "alice", "password": "alice-password"})
    assert response.status_code == 302
    assert client.get(reverse("spend")).status_code == 200
    client.post(reverse("logout"))
    assert client.get(reverse("spend")).status_code == 302


@pytest.mark.django_db
def test_wrong_password_shows_an_error(client, owner):
    response = client.post(reverse("login"), {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


@pytest.mark.django_db
def test_admin_uses_its_own_login(client):
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_header_shows_staff_link_only_to_staff(client, owner, staff):
    client.force_login(owner)
    assert b'href="/admin/"' not in client.get(reverse("spend")).content
    client.force_login(staff)
    assert b'href="/admin/"' in client.get(reverse("spend")).content


@pytest.mark.django_db
def test_healthz_is_public(client):
    from studio import workers

    workers.beat("elsewhere:1")  # a live worker cluster; tests/test_health.py has the rest
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["ok"] is True


# The views anyone may open. Everything else in the URLconf must send an anonymous visitor to
# the login page; a new view is public only by being added here, never by forgetting a decorator.
PUBLIC_NAMES = {
    "login",
    "share_page",  # the token is the access check
    "share_image",
    "public_upload",  # signed, expiring token for gateways that only take URLs
    "healthz",  # load balancers
}
PUBLIC_NAMESPACES = {"simulator"}  # gateways bring their own bearer key
# Sample values for regex groups (re_path has no converters to go by).
REGEX_SAMPLES = {"gateway": "apimart", "task_id": "task-1", "index": "0", "app_label": "studio",
                 "url": "nowhere"}
ROUTE_SAMPLES = {"int": "1", "str": "abc", "path": "1", "slug": "abc",
                 "uuid": "00000000-0000-0000-0000-000000000000"}


def sample_url(prefix, pattern):
    """A concrete URL that the pattern matches, arguments filled with sample values."""
    text = str(pattern.pattern)
    if isinstance(pattern.pattern, RoutePattern):
        text = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: ROUTE_SAMPLES[m.group(1) or "str"], text)
    else:
        text = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: REGEX_SAMPLES[m.group(1)], text)
        text = text.lstrip("^").rstrip("$").replace("\\", "")
    return prefix + text


def every_view(patterns=None, prefix="/", namespace=None):
    """(qualified name, namespace, sample URL, view) for every pattern in the project."""
    if patterns is None:
        patterns = get_resolver().url_patterns
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = pattern.namespace or namespace
            yield from every_view(pattern.url_patterns, sample_url(prefix, pattern), inner)
        else:
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            yield name, namespace, sample_url(prefix, pattern), pattern.callback


@pytest.mark.django_db
def test_every_view_needs_login_unless_deliberately_public(client):
    views = list(every_view())
    assert len(views) > 40  # the walk found the project, the simulator and the admin
    wrong = []
    for name, namespace, url, view in views:
        assert resolve(url).func == view, f"{url} does not reach {name}"
        response = client.get(url)
        location = response.get("Location", "")
        sent_to_login = response.status_code == 302 and location.startswith(reverse("login"))
        if name in PUBLIC_NAMES or namespace in PUBLIC_NAMESPACES:
            if sent_to_login:
                wrong.append(f"{url} ({name}) should be public but sends visitors to log in")
        elif namespace == "admin":
            # The admin checks staff status itself and has its own login page.
            if name == "admin:login":
                if response.status_code != 200:
                    wrong.append(f"{url} ({name}) answered {response.status_code}")
            elif not (response.status_code == 302 and location.startswith("/admin/")):
                wrong.append(f"{url} ({name}) answered {response.status_code} {location}")
        elif not (sent_to_login and f"next={url}" in location):
            wrong.append(f"{url} ({name}) answered {response.status_code} {location} without a login")
    assert wrong == []


@pytest.mark.django_db
def test_staff_may_see_but_not_own_another_users_job(owner, staff):
    job = make_job(owner, images=0)
    assert get_owned_or_404(Job.objects, staff, pk=job.pk) == job
    assert get_own_or_404(Job.objects, owner, pk=job.pk) == job
    with pytest.raises(Http404):
        get_own_or_404(Job.objects, staff, pk=job.pk)
