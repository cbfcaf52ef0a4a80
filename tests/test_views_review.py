"""The cost review (staff only) and the Spend page: figures against sums taken straight from the
ledger rows, the CSV against the page, access for every URL."""

import csv
import io
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio import ledger, review
from studio.models import Job, LedgerEntry, Price
from tests.view_helpers import HX, make_job

pytestmark = pytest.mark.django_db

URLS = ["review", "review_export", "review_jobs", "review_system"]


def settled(owner, images=2, n=None, gateway="apimart", model="wan2.7-image", status=Job.SUCCEEDED, **extra):
    """A job with its hold and settlement, as the pipeline leaves it (no image files needed)."""
    n = n or max(images, 1)
    job = make_job(owner, status=status, images=0, n=n, gateway=gateway, model=model)
    if "created" in extra:
        extra["day"] = timezone.localtime(extra["created"]).date()  # as Job.day is set on creation
    Job.objects.filter(pk=job.pk).update(**extra)
    job.refresh_from_db()
    from django.db import transaction

    with transaction.atomic():
        ledger.hold(job)
    if status in (Job.SUCCEEDED, Job.PARTIAL, Job.CANCELLED) or (
        status == Job.FAILED and not job.needs_review
    ):
        ledger.settle(job, images)
    return job


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


# --- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", URLS)
def test_staff_only_others_get_404(client, owner, staff, name):
    url = reverse(name)
    client.force_login(owner)
    assert client.get(url).status_code == 404
    client.force_login(staff)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("name", URLS)
def test_anonymous_goes_to_login(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_jobs_card_with_its_history_is_staff_only(client, owner, staff):
    job = settled(owner)
    url = reverse("review_job", args=[job.pk])
    client.force_login(owner)
    assert client.get(url).status_code == 404
    client.force_login(staff)
    html = client.get(url).content.decode()
    assert f'id="job-{job.pk}"' in html and 'id="job-events"' in html


@pytest.mark.parametrize(
    "query, words",
    [
        ("?range=forever", "There is no range called 'forever'"),
        ("?start=2026-13-01&end=2026-12-01", "Give both dates as YYYY-MM-DD"),
        ("?start=2026-12-02&end=2026-12-01", "ends before it starts"),
        ("?by=planet", "There is no grouping 'planet'"),
        ("?sort=colour", "There is no column 'colour'"),
    ],
)
def test_an_unknown_query_value_is_said_not_guessed(staff_client, query, words):
    response = staff_client.get(reverse("review") + query)
    assert response.status_code == 400
    assert words in response.content.decode().replace("&#x27;", "'")


# --- figures -------------------------------------------------------------------------------------

jobs_strategy = st.lists(
    st.tuples(
        st.sampled_from(["ann", "bob", "cat"]),
        st.sampled_from(["apimart", "gccai", "anyfast", "foxapi"]),
        st.sampled_from([Job.SUCCEEDED, Job.PARTIAL, Job.FAILED, Job.CANCELLED, Job.RUNNING, "unconfirmed"]),
        st.integers(min_value=1, max_value=4),
        st.integers(min_value=0, max_value=10),  # days ago
    ),
    max_size=25,
)


def direct_sums(jobs):
    """The figures, taken straight from the rows with Python, for comparison."""
    ids = [job.pk for job in jobs]
    rows = list(LedgerEntry.objects.filter(job__in=ids))
    charged = sum((r.amount for r in rows if r.kind == "charge"), Decimal(0))
    released = sum((r.amount for r in rows if r.kind == "release"), Decimal(0))
    unconfirmed = sum(
        (r.amount for r in rows if r.kind == "hold" and r.job.status == Job.FAILED and r.job.needs_review),
        Decimal(0),
    )
    return {
        "jobs": len(ids),
        "images": sum(r.images for r in rows if r.kind == "charge"),
        "charged": charged,
        "released": released - charged if released else Decimal(0),
        "unconfirmed": unconfirmed,
        "failed": sum(1 for job in jobs if job.status == Job.FAILED),
    }


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(made=jobs_strategy)
def test_every_groups_figures_are_the_sums_of_its_rows(made):
    from django.db import transaction

    with transaction.atomic():
        Price.objects.update_or_create(
            gateway="anyfast", model="wan2.7-image", defaults={"unit_price": "0.30"}
        )
        Price.objects.update_or_create(
            gateway="foxapi", model="wan2.7-image", defaults={"unit_price": "0.40"}
        )
        people = {name: User.objects.get_or_create(username=name)[0] for name in ("ann", "bob", "cat")}
        design, _ = Group.objects.get_or_create(name="Design")
        ops, _ = Group.objects.get_or_create(name="Ops")
        people["ann"].groups.add(design, ops)  # in two teams
        people["bob"].groups.add(design)
        jobs = []
        for name, gateway, status, n, days_ago in made:
            unconfirmed = status == "unconfirmed"
            job = settled(
                people[name],
                images=min(n, 2),
                n=n,
                gateway=gateway,
                status=Job.FAILED if unconfirmed else status,
                needs_review=unconfirmed,
                created=timezone.now() - timedelta(days=days_ago),
            )
            jobs.append(job)
        period = review.Range(timezone.localdate() - timedelta(days=10), timezone.localdate(), "custom")
        total = review.totals(period)
        assert {name: getattr(total, name) for name in direct_sums(jobs)} == direct_sums(jobs)
        for by in review.GROUPINGS:
            found = review.report(period, by)
            for row in found.rows:
                members = [job for job in jobs if member(job, by, row.key)]
                assert {name: getattr(row, name) for name in direct_sums(members)} == direct_sums(members), (
                    by,
                    row,
                )
            if by != "team":
                for name in ("jobs", "images", "charged", "released", "unconfirmed", "failed"):
                    assert sum(getattr(row, name) for row in found.rows) == getattr(found.total, name), (
                        by,
                        name,
                    )
        transaction.set_rollback(True)


def member(job, by, key):
    if by == "user":
        return job.owner.username == key
    if by == "team":
        names = list(job.owner.groups.values_list("name", flat=True))
        return key in names if key else not names
    if by == "day":
        return job.day.isoformat() == key
    return getattr(job, by) == key


def test_a_person_in_two_teams_counts_in_both_and_the_page_says_so(staff_client, owner, teammate):
    Group.objects.create(name="Ops").user_set.add(owner)
    settled(owner, images=2)
    found = review.report(review.parse_range({}), "team")
    assert {row.label: row.charged for row in found.rows} == {
        "Design": Decimal("0.40"),
        "Ops": Decimal("0.40"),
    }
    assert found.total.charged == Decimal("0.40")
    html = staff_client.get(reverse("review") + "?by=team").content.decode()
    assert "is in more than one team and counts in each team" in html


def test_a_price_change_leaves_old_charges_alone(staff_client, owner):
    first = settled(owner, images=2, gateway="anyfast", model="wan2.7-image")  # held at ¥0.20 (make_job)
    Price.objects.create(gateway="anyfast", model="wan2.7-image", unit_price="0.90")
    assert LedgerEntry.objects.get(job=first, kind="charge").amount == Decimal("0.40")
    assert review.totals(review.parse_range({})).charged == Decimal("0.40")
    html = staff_client.get(reverse("review")).content.decode()
    assert "¥0.90" in html  # the new price is listed, with its date
    assert "AnyFast" in html and "not set" in html  # other offers without a price say so


def test_the_chart_has_one_bar_per_day_in_the_range(staff_client, owner):
    settled(owner, images=2)
    html = staff_client.get(reverse("review") + "?range=7d").content.decode()
    assert html.count('class="day-bar"') == 7
    assert re.search(r"<title>\w{3} \w{3} \d+: ¥0\.40 \(APIMart ¥0\.40\)</title>", html)


def test_the_csv_is_the_page(staff_client, owner, teammate):
    settled(owner, images=2)
    settled(teammate, images=1, gateway="gccai")
    page = staff_client.get(reverse("review") + "?by=user&sort=key").content.decode()
    response = staff_client.get(reverse("review_export") + "?by=user&sort=key")
    assert response["Content-Type"].startswith("text/csv")
    today = timezone.localdate()
    assert (
        f"cost-review-by-user-{today.replace(day=1).isoformat()}-to-{today.isoformat()}.csv"
        in (response["Content-Disposition"])
    )
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == [
        "User",
        "Jobs",
        "Images",
        "Charged",
        "Per image",
        "Released",
        "Unconfirmed",
        "Failed",
        "Share",
    ]
    labels = re.findall(r'<th scope="row"><a [^>]*>([^<]+)</a></th>', page)
    assert [row[0] for row in rows[1:]] == labels
    assert rows[1] == ["alice", "1", "2", "0.4000", "0.2000", "0.0000", "0.0000", "0", "66.7"]
    assert rows[-1][0] == "Total" and rows[-1][3] == "0.6000"


def test_formula_cells_are_neutralised(staff_client):
    sly = User.objects.create_user("=HYPERLINK(1)", password="x")
    settled(sly, images=1)
    text = staff_client.get(reverse("review_export") + "?by=user").content.decode()
    assert "'=HYPERLINK(1)" in text
    for value in ("+1", "-1", "@x", "=1"):
        assert review.safe_cell(value) == "'" + value
    assert review.safe_cell(Decimal("-0.30")) == "-0.30"  # numbers stay numbers


def test_a_figure_drills_down_to_its_jobs_and_a_job_to_its_card(staff_client, owner, teammate):
    mine = settled(owner, images=2)
    failed = settled(owner, images=0, status=Job.FAILED)
    settled(teammate, images=1)
    page = staff_client.get(reverse("review") + "?by=user").content.decode()
    link = re.search(r'href="(/review/jobs/\?range=month&amp;by=user&amp;group=alice)"', page).group(1)
    listing = staff_client.get(link.replace("&amp;", "&")).content.decode()
    assert f"#{mine.pk}</a>" in listing and f"#{failed.pk}</a>" in listing and "bob" not in listing
    only_failed = staff_client.get(link.replace("&amp;", "&") + "&only=failed").content.decode()
    assert f"#{failed.pk}</a>" in only_failed and f"#{mine.pk}</a>" not in only_failed
    assert reverse("review_job", args=[mine.pk]) in listing


def test_flags_count_what_needs_a_person(staff_client, owner):
    settled(owner, images=0, status=Job.FAILED, needs_review=True)
    settled(owner, images=1, n=2, status=Job.PARTIAL)
    settled(owner, images=2, stopped_by_user=True)
    settled(owner, images=0, status=Job.FAILED, error_class="account")
    flags = review.flags(review.report(review.parse_range({}), "user"), review.budget_rows())
    assert (flags["unconfirmed"], flags["partial"], flags["stopped"]) == (1, 1, 1)
    assert flags["account"] == [("APIMart", 1)]
    html = staff_client.get(reverse("review")).content.decode()
    assert "the APIMart key or balance was refused 1 time today" in html
    assert "price not set, its jobs are refused" in html


# --- the Spend page --------------------------------------------------------------------------------


def test_spend_shows_one_row_per_job_and_the_breakdowns(owner_client, owner):
    done = settled(owner, images=2)
    failed = settled(owner, images=0, status=Job.FAILED)
    ledger.adjust(
        owner, Decimal("-0.10"), "refund for a blurry one", User.objects.create_user("lead", is_staff=True)
    )
    html = owner_client.get(reverse("spend")).content.decode()
    ledger_table = html[html.index('id="ledger"') : html.index("</table>", html.index('id="ledger"'))]
    assert ledger_table.count("<tr>") == 1 + 2  # header + one row per job
    assert f"#{done.pk}" in ledger_table and f"#{failed.pk}" in ledger_table
    assert "Adjustment by lead: refund for a blurry one" in ledger_table
    assert "By gateway" in html and "By model" in html
    assert "¥0.20 an image on average" in html
    assert html.count('class="day-bar"') == 30


def test_the_budget_bar_turns_amber_then_red(owner_client, owner):
    from studio.models import Budget

    Budget.objects.create(user=owner, monthly_limit="0.50")
    settled(owner, images=2)  # 0.40 of 0.50: 80%
    assert "budget-bar warn" in owner_client.get(reverse("spend")).content.decode()
    Budget.objects.filter(user=owner).update(monthly_limit="0.40")  # an admin lowered it
    html = owner_client.get(reverse("spend")).content.decode()
    assert "budget-bar over" in html


def test_spend_csv_is_the_users_own_month(owner_client, owner, teammate):
    mine = settled(owner, images=2)
    settled(teammate, images=1)
    month = timezone.localdate().strftime("%Y-%m")
    response = owner_client.get(reverse("spend_export") + f"?month={month}")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["job", "made", "gateway"]
    assert [row[0] for row in rows[1:]] == [str(mine.pk)]
    assert rows[1][-3:] == ["0.4000", "0.4000", "0.4000"]
    assert f"image-studio-spend-{month}.csv" in response["Content-Disposition"]
    assert owner_client.get(reverse("spend_export") + "?month=someday").status_code == 400


def test_the_review_is_staff_navigation_only(client, owner, staff):
    client.force_login(owner)
    assert reverse("review") not in client.get(reverse("spend")).content.decode()
    client.force_login(staff)
    assert reverse("review") in client.get(reverse("spend")).content.decode()


def test_spend_page_card_link_and_htmx_free(owner_client, owner):
    job = settled(owner, images=1)
    html = owner_client.get(reverse("spend"), **HX).content.decode()
    assert reverse("job_card", args=[job.pk]) in html
