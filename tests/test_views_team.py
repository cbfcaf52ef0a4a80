"""The Team page, team sharing from a job card, and who reaches what: owner / teammate /
member of another team / anonymous, for every team URL and every image the team page shows."""

import re

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse

from studio.models import Image, Job, JobInput, LedgerEntry, Share, TeamShare, Upload
from tests.view_helpers import HX, make_job, make_upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_team_member(db):
    """In a team of their own, not the owner's."""
    member = User.objects.create_user("olga", "olga@example.invalid", "olga-password")
    Group.objects.create(name="Marketing").user_set.add(member)
    return member


@pytest.fixture
def design(teammate):
    return Group.objects.get(name="Design")


@pytest.fixture
def shared_job(owner, design):
    job = make_job(owner, images=3, prompt="A fox in the snow")
    TeamShare.objects.create(job=job, team=design, shared_by=owner)
    return job


def tile_ids(response):
    return [int(found) for found in re.findall(r'id="tile-(\d+)"', response.content.decode())]


def test_a_teammate_sees_a_shared_job_with_its_authors_name(client, teammate, shared_job):
    make_job(shared_job.owner, images=1, prompt="not shared")
    client.force_login(teammate)
    response = client.get(reverse("team"))
    assert response.status_code == 200
    assert tile_ids(response) == list(shared_job.images.order_by("index").values_list("pk", flat=True))
    html = response.content.decode()
    assert "alice" in html and "Design" in html
    assert reverse("team_image_thumbnail", args=[shared_job.images.first().pk]) in html
    # never the owner's private URLs
    assert "/files/images/" not in html


def test_the_team_page_searches_and_filters(client, teammate, owner, design, shared_job):
    other = make_job(owner, images=1, prompt="A lighthouse", gateway="foxapi")
    TeamShare.objects.create(job=other, team=design, shared_by=owner)
    client.force_login(teammate)
    assert tile_ids(client.get(reverse("team") + "?q=LIGHTHOUSE", **HX)) == [other.images.get().pk]
    assert tile_ids(client.get(reverse("team") + "?gateway=foxapi", **HX)) == [other.images.get().pk]
    response = client.get(reverse("team") + "?gateway=nowhere", **HX)
    assert tile_ids(response) == []
    assert b"Select a valid choice" in response.content


def test_unsharing_or_leaving_the_team_hides_it_at_once(client, owner, teammate, design, shared_job):
    client.force_login(teammate)
    image = shared_job.images.first()
    assert client.get(reverse("team_image_file", args=[image.pk])).status_code == 200
    design.user_set.remove(teammate)
    assert tile_ids(client.get(reverse("team"))) == []
    assert client.get(reverse("team_image_file", args=[image.pk])).status_code == 404
    design.user_set.add(teammate)
    design.user_set.remove(owner)  # the author left: their job leaves the team's view too
    assert tile_ids(client.get(reverse("team"))) == []
    design.user_set.add(owner)
    client.force_login(owner)
    client.post(reverse("job_team", args=[shared_job.pk]), {}, **HX)  # nothing ticked: unshare
    assert not TeamShare.objects.exists()
    client.force_login(teammate)
    assert client.get(reverse("team_image", args=[image.pk])).status_code == 404


def test_the_owner_shares_from_the_card(client, owner, design, teammate):
    job = make_job(owner, images=1)
    client.force_login(owner)
    card = client.get(reverse("jobs")).content.decode()
    assert reverse("job_team", args=[job.pk]) in card and "Design" in card
    response = client.post(reverse("job_team", args=[job.pk]), {"team": [design.pk]}, **HX)
    assert response.status_code == 200 and b"Saved." in response.content
    assert TeamShare.objects.get().team == design


def test_sharing_with_a_team_one_is_not_in_is_refused(client, owner, teammate, other_team_member):
    job = make_job(owner, images=1)
    client.force_login(owner)
    marketing = Group.objects.get(name="Marketing")
    response = client.post(reverse("job_team", args=[job.pk]), {"team": [marketing.pk]}, **HX)
    assert response.status_code == 400 and b"Choose among your own teams." in response.content
    assert not TeamShare.objects.exists()


def test_the_team_lightbox_has_download_and_remix_but_no_delete_or_share(client, teammate, shared_job):
    client.force_login(teammate)
    image = shared_job.images.order_by("index").first()
    html = client.get(reverse("team_image", args=[image.pk]), **HX).content.decode()
    assert reverse("team_image_file", args=[image.pk]) + "?download=1" in html
    assert reverse("team_remix", args=[shared_job.pk]) in html
    assert "By <strong>alice</strong>" in html
    assert reverse("gallery_delete", args=[image.pk]) not in html
    assert reverse("image_share", args=[image.pk]) not in html
    assert "/files/" not in html
    assert "Image 1 of 3" in html


def test_a_teammates_remix_copies_the_inputs_to_them(client, owner, teammate, design):
    job = make_job(owner, images=1, mode="edit", prompt="Make it blue")
    upload = make_upload(owner)
    JobInput.objects.create(job=job, upload=upload, position=0, boxes=[[1, 2, 30, 40]])
    TeamShare.objects.create(job=job, team=design, shared_by=owner)
    client.force_login(teammate)
    response = client.post(reverse("team_remix", args=[job.pk]))
    assert response.status_code == 302
    copy = Upload.objects.get(owner=teammate)
    assert copy.sha256 == upload.sha256 and copy.file.name != upload.file.name
    page = client.get(response.url)
    assert page.status_code == 200
    html = page.content.decode()
    assert "Make it blue" in html
    assert reverse("upload_file", args=[copy.pk]) in html
    assert reverse("upload_file", args=[upload.pk]) not in html


# --- access -----------------------------------------------------------------------------------

IMAGE_URLS = ["team_image", "team_image_file", "team_image_thumbnail"]


@pytest.mark.parametrize("name", IMAGE_URLS)
def test_team_image_urls_owner_and_teammate_reach_them(client, owner, teammate, shared_job, name):
    image = shared_job.images.first()
    for user in (owner, teammate):
        client.force_login(user)
        assert client.get(reverse(name, args=[image.pk])).status_code == 200


@pytest.mark.parametrize("name", IMAGE_URLS)
def test_team_image_urls_another_team_and_outsiders_get_404(
        client, outsider, other_team_member, shared_job, name):
    image = shared_job.images.first()
    for user in (other_team_member, outsider):
        client.force_login(user)
        assert client.get(reverse(name, args=[image.pk])).status_code == 404


@pytest.mark.parametrize("name", IMAGE_URLS + ["team_remix"])
def test_team_urls_send_anonymous_visitors_to_login(client, shared_job, name):
    pk = shared_job.pk if name == "team_remix" else shared_job.images.first().pk
    response = getattr(client, "post" if name == "team_remix" else "get")(reverse(name, args=[pk]))
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_the_team_page_access(client, owner, teammate, other_team_member, outsider, shared_job):
    ids = set(shared_job.images.values_list("pk", flat=True))
    for user, sees in ((owner, ids), (teammate, ids), (other_team_member, set()), (outsider, set())):
        client.force_login(user)
        assert set(tile_ids(client.get(reverse("team")))) == sees
    client.logout()
    assert client.get(reverse("team")).url.startswith(reverse("login"))


def test_team_remix_access(client, teammate, other_team_member, outsider, shared_job):
    for user in (other_team_member, outsider):
        client.force_login(user)
        assert client.post(reverse("team_remix", args=[shared_job.pk])).status_code == 404
        assert client.get(reverse("create") + f"?remix={shared_job.pk}").status_code == 404
    client.force_login(teammate)
    assert client.post(reverse("team_remix", args=[shared_job.pk])).status_code == 302
    assert client.get(reverse("create") + f"?remix={shared_job.pk}").status_code == 200


def test_a_teammate_reaches_the_images_only_through_the_team_view(client, teammate, shared_job):
    """The owner's private URLs stay the owner's: the team view is the only way in."""
    image = shared_job.images.first()
    client.force_login(teammate)
    for name in ("image_file", "image_thumbnail", "gallery_image"):
        assert client.get(reverse(name, args=[image.pk])).status_code == 404
    assert client.get(reverse("job_download", args=[shared_job.pk])).status_code == 404


@pytest.mark.parametrize(("method", "name"), [
    ("post", "job_delete"), ("post", "job_cancel"), ("post", "job_share"), ("post", "job_team"),
    ("post", "gallery_delete"), ("post", "gallery_favourite"), ("post", "image_share"),
])
def test_a_teammate_cannot_delete_share_or_cancel(client, teammate, shared_job, method, name):
    image = shared_job.images.first()
    pk = image.pk if name.startswith(("gallery", "image")) else shared_job.pk
    client.force_login(teammate)
    assert getattr(client, method)(reverse(name, args=[pk]), **HX).status_code == 404
    assert Image.objects.filter(job=shared_job).count() == 3
    assert not Share.objects.exists() and not Job.objects.get(pk=shared_job.pk).hidden
    assert TeamShare.objects.count() == 1 and not LedgerEntry.objects.exists()


def test_job_team_access(client, owner, outsider, other_team_member):
    job = make_job(owner, images=1)
    for user in (outsider, other_team_member):
        client.force_login(user)
        assert client.post(reverse("job_team", args=[job.pk]), **HX).status_code == 404
    client.logout()
    assert client.post(reverse("job_team", args=[job.pk])).url.startswith(reverse("login"))
