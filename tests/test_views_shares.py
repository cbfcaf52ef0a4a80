from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from studio.models import Share
from tests.view_helpers import HX, make_job

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(owner):
    return make_job(owner, images=2)


@pytest.fixture
def share(job, owner):
    return Share.objects.create(job=job, created_by=owner)


def test_it_creates_a_share_link(owner_client, job):
    response = owner_client.post(reverse("job_share", args=[job.pk]), **HX)
    share = Share.objects.get()
    assert share.job == job and not share.revoked
    html = response.content.decode()
    assert f"http://testserver/s/{share.token}/" in html
    assert "data-copy" in html
    assert reverse("share_revoke", args=[share.token]) in html


def test_each_link_has_its_own_options(owner_client, job):
    owner_client.post(reverse("job_share", args=[job.pk]), **HX)
    options = {"include_prompt": "1", "expires": "7", "listed": "1"}
    owner_client.post(reverse("job_share", args=[job.pk]), options, **HX)
    plain, chosen = Share.objects.order_by("id")
    assert (plain.include_prompt, plain.listed, plain.expires) == (False, False, None)
    assert chosen.include_prompt and chosen.listed
    assert timedelta(days=6, hours=23) < chosen.expires - timezone.now() <= timedelta(days=7)


def test_an_unknown_expiry_is_refused_next_to_the_field(owner_client, job):
    response = owner_client.post(reverse("job_share", args=[job.pk]), {"expires": "365"}, **HX)
    assert Share.objects.count() == 0
    assert b"Select a valid choice" in response.content and b"field-error" in response.content


def test_the_card_shows_the_live_link(owner_client, share):
    assert f"/s/{share.token}/" in owner_client.get(reverse("jobs")).content.decode()


def test_revoke_stops_the_link(owner_client, client, share):
    response = owner_client.post(reverse("share_revoke", args=[share.token]), **HX)
    assert b"Create link" in response.content
    share.refresh_from_db()
    assert share.revoked
    client.logout()
    assert client.get(reverse("share_page", args=[share.token])).status_code == 404


def test_the_public_page_needs_no_login_and_shows_the_images(client, share, job):
    response = client.get(reverse("share_page", args=[share.token]))
    assert response.status_code == 200
    html = response.content.decode()
    for image in job.images.all():
        assert reverse("share_image", args=[share.token, image.pk, "thumb"]) in html
        assert reverse("share_image", args=[share.token, image.pk, "full"]) in html
    assert job.owner.username not in html
    assert response["X-Robots-Tag"] == "noindex"


def test_public_images_are_served(client, share, job):
    image = job.images.first()
    response = client.get(reverse("share_image", args=[share.token, image.pk, "full"]))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    with image.file.open("rb") as handle:
        assert b"".join(response.streaming_content) == handle.read()
    thumb = client.get(reverse("share_image", args=[share.token, image.pk, "thumb"]))
    assert thumb["Content-Type"] == "image/webp"


def test_a_share_does_not_reach_other_images(client, share, owner):
    other = make_job(owner, images=1).images.get()
    assert client.get(reverse("share_image", args=[share.token, other.pk, "full"])).status_code == 404


def test_an_image_share_shows_only_that_image(client, job, owner):
    first, second = job.images.order_by("index")
    share = Share.objects.create(job=job, image=first, created_by=owner)
    html = client.get(reverse("share_page", args=[share.token])).content.decode()
    assert f"/{first.pk}/thumb/" in html and f"/{second.pk}/thumb/" not in html


def test_expired_and_unknown_links_are_404(client, share):
    Share.objects.filter(pk=share.pk).update(expires=timezone.now() - timedelta(minutes=1))
    assert client.get(reverse("share_page", args=[share.token])).status_code == 404
    assert client.get(reverse("share_page", args=["nope"])).status_code == 404


def test_without_js_it_redirects_back(owner_client, job):
    response = owner_client.post(reverse("job_share", args=[job.pk]))
    assert response.status_code == 302


# --- access ------------------------------------------------------------------------------


def test_another_user_cannot_share_or_revoke(client, outsider, teammate, job, share):
    for user in (outsider, teammate):
        client.force_login(user)
        assert client.post(reverse("job_share", args=[job.pk]), **HX).status_code == 404
        assert client.post(reverse("share_revoke", args=[share.token]), **HX).status_code == 404
    share.refresh_from_db()
    assert not share.revoked
    assert Share.objects.count() == 1


def test_staff_cannot_share_or_revoke_another_users_job(client, staff, job, share):
    client.force_login(staff)
    assert client.post(reverse("job_share", args=[job.pk]), **HX).status_code == 404
    assert client.post(reverse("share_revoke", args=[share.token]), **HX).status_code == 404
    share.refresh_from_db()
    assert not share.revoked
    assert Share.objects.count() == 1


def test_staff_share_and_revoke_their_own_job(client, staff):
    own = make_job(staff, images=1)
    client.force_login(staff)
    assert client.post(reverse("job_share", args=[own.pk]), **HX).status_code == 200
    share = Share.objects.get()
    assert client.post(reverse("share_revoke", args=[share.token]), **HX).status_code == 200
    share.refresh_from_db()
    assert share.revoked


def test_anonymous_cannot_share_or_revoke(client, job, share):
    for url in (reverse("job_share", args=[job.pk]), reverse("share_revoke", args=[share.token])):
        response = client.post(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_share_actions_reject_get(owner_client, job, share):
    assert owner_client.get(reverse("job_share", args=[job.pk])).status_code == 405
    assert owner_client.get(reverse("share_revoke", args=[share.token])).status_code == 405


# --- options, My links, the public page's tags -----------------------------------------------------


def test_the_public_page_has_open_graph_and_twitter_tags_with_absolute_urls(client, job, owner):
    share = Share.objects.create(job=job, created_by=owner, include_prompt=True)
    html = client.get(reverse("share_page", args=[share.token])).content.decode()
    first = job.images.order_by("index").first()
    image_url = f"http://testserver{reverse('share_image', args=[share.token, first.pk, 'full'])}"
    assert f'<meta property="og:image" content="{image_url}">' in html
    assert f'<meta name="twitter:image" content="{image_url}">' in html
    assert '<meta name="twitter:card" content="summary_large_image">' in html
    assert f'<meta property="og:url" content="http://testserver/s/{share.token}/">' in html
    assert job.prompt in html  # chosen: the prompt and settings are shown
    assert f'href="{reverse("login")}"' in html and "Image Studio" in html
    assert "?download=1" in html
    assert "/files/" not in html and owner.username not in html


def test_the_prompt_stays_hidden_unless_chosen(client, share, job):
    html = client.get(reverse("share_page", args=[share.token])).content.decode()
    assert job.prompt not in html and "blurry" not in html


def test_a_listed_link_may_be_indexed(client, job, owner):
    listed = Share.objects.create(job=job, created_by=owner, listed=True)
    response = client.get(reverse("share_page", args=[listed.token]))
    assert "X-Robots-Tag" not in response and b"noindex" not in response.content


def test_views_are_counted(client, share):
    for _ in range(3):
        client.get(reverse("share_page", args=[share.token]))
    share.refresh_from_db()
    assert share.views == 3


def test_a_one_day_link_expires(client, owner_client, job):
    owner_client.post(reverse("job_share", args=[job.pk]), {"expires": "1"}, **HX)
    share = Share.objects.get()
    assert client.get(reverse("share_page", args=[share.token])).status_code == 200
    Share.objects.filter(pk=share.pk).update(expires=timezone.now() - timedelta(seconds=1))
    assert client.get(reverse("share_page", args=[share.token])).status_code == 404


def test_my_links_lists_every_link_with_its_options(owner_client, owner, job, outsider):
    image = job.images.order_by("index").first()
    job_link = Share.objects.create(job=job, created_by=owner, include_prompt=True, views=7,
                                    expires=timezone.now() + timedelta(days=7))
    image_link = Share.objects.create(job=job, image=image, created_by=owner, listed=True)
    theirs = Share.objects.create(job=make_job(outsider, images=1), created_by=outsider)
    html = owner_client.get(reverse("shares")).content.decode()
    assert f"/s/{job_link.token[:9]}" in html and f"/s/{image_link.token[:9]}" in html
    assert theirs.token[:9] not in html
    assert f"job #{job.pk}" in html and f"image 1 of job #{job.pk}" in html
    assert "prompt shown" in html and "images only" in html and "listed" in html and "noindex" in html
    assert ">7<" in html and "never" in html
    assert reverse("share_revoke", args=[job_link.token]) in html


def test_revoking_from_my_links_returns_there(owner_client, share, client):
    response = owner_client.post(reverse("share_revoke", args=[share.token]), {"back": "shares"})
    assert response.status_code == 302 and response.url == reverse("shares")
    assert client.get(reverse("share_page", args=[share.token])).status_code == 404


def test_an_image_gets_a_link_of_its_own(owner_client, job):
    image = job.images.order_by("index").last()
    options = {"include_prompt": "1", "expires": "30"}
    response = owner_client.post(reverse("image_share", args=[image.pk]), options)
    assert response.status_code == 302 and response.url == reverse("shares")
    share = Share.objects.get()
    assert share.image == image and share.include_prompt


def test_an_image_link_with_an_unknown_expiry_is_refused(owner_client, job):
    image = job.images.first()
    response = owner_client.post(reverse("image_share", args=[image.pk]), {"expires": "forever"})
    assert response.status_code == 400 and b"Select a valid choice" in response.content
    assert not Share.objects.exists()


def test_my_links_and_image_share_access(client, owner, outsider, job):
    image = job.images.first()
    client.force_login(outsider)
    assert client.post(reverse("image_share", args=[image.pk])).status_code == 404
    assert b"No links yet" in client.get(reverse("shares")).content
    client.logout()
    for response in (client.get(reverse("shares")), client.post(reverse("image_share", args=[image.pk]))):
        assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert not Share.objects.exists()
