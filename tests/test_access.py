import pytest
from django.urls import reverse

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
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"ok": True}
