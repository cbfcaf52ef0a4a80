import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, connection, transaction

from studio import ledger
from studio.models import Budget, Job, LedgerEntry, Price


def make_job(user, n=2, price="0.50", gateway="apimart", model="wan2.7-image-pro"):
    return Job.objects.create(
        owner=user,
        gateway=gateway,
        model=model,
        mode="text-to-image",
        prompt="a cat",
        request={"gateway": gateway, "model": model, "mode": "text-to-image", "prompt": "a cat", "n": n},
        n_requested=n,
        unit_price=Decimal(price),
        hold_amount=Decimal(price) * n,
    )


def hold(job):
    with transaction.atomic():
        return ledger.hold(job)


@pytest.mark.django_db
def test_hold_reserves_n_times_the_unit_price(owner):
    job = make_job(owner, n=4)
    entry = hold(job)
    assert entry.kind == "hold" and entry.amount == Decimal("2.00") and entry.images == 4
    assert ledger.month_spend(owner) == Decimal("2.00")


@pytest.mark.django_db
def test_settle_charges_only_images_received(owner):
    job = make_job(owner, n=4)
    hold(job)
    assert ledger.settle(job, 3) is True
    kinds = dict(LedgerEntry.objects.filter(job=job).values_list("kind", "amount"))
    assert kinds == {"hold": Decimal("2.0000"), "release": Decimal("2.0000"), "charge": Decimal("1.5000")}
    assert ledger.month_spend(owner) == Decimal("1.50")


@pytest.mark.django_db
def test_a_second_settlement_does_nothing(owner):
    job = make_job(owner)
    hold(job)
    assert ledger.settle(job, 2) is True
    assert ledger.settle(job, 2) is False
    assert ledger.release(job) is False
    assert LedgerEntry.objects.filter(job=job).count() == 3
    assert ledger.month_spend(owner) == Decimal("1.00")


@pytest.mark.django_db
def test_the_database_refuses_a_second_charge(owner):
    job = make_job(owner)
    hold(job)
    ledger.settle(job, 1)
    with pytest.raises(IntegrityError), transaction.atomic():
        LedgerEntry.objects.create(user=owner, job=job, kind="charge", amount=Decimal("0.5"))


@pytest.mark.django_db
def test_release_charges_nothing(owner):
    job = make_job(owner)
    hold(job)
    ledger.release(job)
    assert ledger.month_spend(owner) == Decimal("0")
    assert not LedgerEntry.objects.filter(job=job, kind="charge").exists()


@pytest.mark.django_db
def test_adjustments_count_toward_spend(owner):
    LedgerEntry.objects.create(user=owner, kind="adjustment", amount=Decimal("-0.30"), note="refund")
    assert ledger.month_spend(owner) == Decimal("-0.30")


@pytest.mark.django_db
def test_hold_over_budget_is_refused_with_a_clear_message(owner):
    Budget.objects.create(user=owner, monthly_limit=Decimal("1.00"))
    hold(make_job(owner, n=1))
    with pytest.raises(ledger.BudgetExceeded) as caught:
        hold(make_job(owner, n=2))
    assert caught.value.message == (
        "This job would cost up to ¥1.00 but only ¥0.50 is left of your monthly budget."
    )
    assert ledger.remaining(owner) == Decimal("0.50")


@pytest.mark.django_db
def test_team_budget_is_shared_by_its_members(owner, teammate):
    team = Group.objects.get(name="Design")
    Budget.objects.create(team=team, monthly_limit=Decimal("1.50"))
    hold(make_job(teammate, n=2))
    with pytest.raises(ledger.BudgetExceeded) as caught:
        hold(make_job(owner, n=2))
    assert "your team Design has only ¥0.50 left" in caught.value.message


@pytest.mark.django_db
def test_default_budget_comes_from_settings(owner, settings):
    settings.STUDIO_DEFAULT_MONTHLY_BUDGET = "5.00"
    assert ledger.remaining(owner) == Decimal("5.00")
    settings.STUDIO_DEFAULT_MONTHLY_BUDGET = ""
    assert ledger.remaining(owner) is None


@pytest.mark.django_db
def test_admin_price_overrides_the_documented_one(owner):
    assert ledger.unit_price("apimart", "wan2.7-image") == Decimal("0.20")
    assert ledger.unit_price("anyfast", "wan2.7-image") is None
    Price.objects.create(gateway="anyfast", model="wan2.7-image", unit_price=Decimal("0.18"))
    assert ledger.unit_price("anyfast", "wan2.7-image") == Decimal("0.18")


@pytest.mark.django_db
def test_spend_summary(owner):
    Budget.objects.create(user=owner, monthly_limit=Decimal("10.00"))
    job = make_job(owner, n=4)
    hold(job)
    ledger.settle(job, 4)
    running = make_job(owner, n=1)
    hold(running)
    summary = ledger.spend_summary(owner)
    assert summary["spent"] == Decimal("2.50")
    assert summary["open_holds"] == Decimal("0.50")
    assert summary["images"] == 4
    assert summary["percent"] == 25
    assert len(summary["history"]) == 6


@pytest.mark.django_db(transaction=True)
def test_concurrent_holds_cannot_overspend(owner):
    """Several threads, each its own database connection, race to hold ¥1.00 of a ¥2.00 budget."""
    Budget.objects.create(user=owner, monthly_limit=Decimal("2.00"))
    jobs = [make_job(owner, n=2) for _ in range(6)]
    start = threading.Barrier(len(jobs))
    outcomes = []

    def race(job):
        try:
            start.wait()
            with transaction.atomic():
                ledger.hold(job)
            outcomes.append("held")
        except ledger.BudgetExceeded:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("held") == 2
    assert outcomes.count("refused") == 4
    assert ledger.month_spend(owner) == Decimal("2.00")


@pytest.mark.django_db
def test_quote_gives_price_total_what_is_left_and_whether_it_fits(owner):
    Budget.objects.create(user=owner, monthly_limit=Decimal("1.00"))
    found = ledger.quote(owner, "apimart", "wan2.7-image-pro", 2)
    assert (found.price, found.total, found.left, found.fits) == (
        Decimal("0.50"), Decimal("1.00"), Decimal("1.00"), True
    )
    too_many = ledger.quote(owner, "apimart", "wan2.7-image-pro", 3)
    assert (too_many.total, too_many.fits) == (Decimal("1.50"), False)
    assert too_many.problem == (
        "This job would cost up to ¥1.50 but only ¥1.00 is left of your monthly budget."
    )


@pytest.mark.django_db
def test_quote_has_no_total_without_a_price_or_a_usable_count(owner):
    assert ledger.quote(owner, "anyfast", "wan2.7-image", 1).price is None  # anyfast publishes none
    for n in (0, -3, "two", True):
        found = ledger.quote(owner, "apimart", "wan2.7-image-pro", n)
        assert (found.total, found.fits) == (None, False)


@pytest.mark.django_db
def test_quote_counts_team_budgets(owner, teammate):
    Budget.objects.create(team=Group.objects.get(name="Design"), monthly_limit=Decimal("1.50"))
    hold(make_job(teammate, n=2))
    found = ledger.quote(owner, "apimart", "wan2.7-image-pro", 2)
    assert not found.fits
    assert "your team Design has only ¥0.50 left" in found.problem


@pytest.mark.django_db
def test_an_adjustment_records_the_staff_member_and_a_reason(owner, django_user_model):
    staff = django_user_model.objects.create_user("lead", password="x", is_staff=True)
    entry = ledger.adjust(owner, Decimal("-0.30"), "  refund for a broken image ", staff)
    assert (entry.kind, entry.amount, entry.note, entry.recorded_by) == (
        "adjustment", Decimal("-0.30"), "refund for a broken image", staff
    )
    assert ledger.month_spend(owner) == Decimal("-0.30")
    with pytest.raises(ValueError):
        ledger.adjust(owner, Decimal("1"), "   ", staff)
    with pytest.raises(ValueError):
        ledger.adjust(owner, Decimal("1"), "a reason", owner)  # not staff
    assert LedgerEntry.objects.count() == 1


@pytest.mark.django_db
def test_an_adjustment_made_in_the_admin_goes_through_the_ledger(owner, client, django_user_model):
    admin_user = django_user_model.objects.create_superuser("boss", password="pw")
    client.force_login(admin_user)
    url = "/admin/studio/ledgerentry/add/"
    refused = client.post(url, {"user": owner.pk, "amount": "-0.30", "note": ""})
    assert refused.status_code == 200 and "This field is required" in refused.content.decode()
    assert not LedgerEntry.objects.exists()
    client.post(url, {"user": owner.pk, "amount": "-0.30", "note": "refund"})
    entry = LedgerEntry.objects.get()
    assert (entry.kind, entry.amount, entry.note, entry.recorded_by) == (
        "adjustment", Decimal("-0.30"), "refund", admin_user
    )


@pytest.mark.django_db
def test_job_cost_says_held_charged_or_nothing(owner):
    job = make_job(owner, n=2)
    assert ledger.job_cost(job).state == "none"
    hold(job)
    assert ledger.job_cost(job) == ledger.JobCost(held=Decimal("1.00"), charged=None, released=None)
    assert ledger.job_cost(job).state == "held"
    ledger.release(job)
    assert ledger.job_cost(job).state == "nothing"
    other = make_job(owner, n=2)
    hold(other)
    ledger.settle(other, 1)
    assert (ledger.job_cost(other).charged, ledger.job_cost(other).state) == (Decimal("0.50"), "charged")


@pytest.mark.django_db
def test_with_costs_gives_every_cards_money_in_the_one_query(owner, staff, django_assert_num_queries):
    """The same JobCost as job_cost()'s own query, for each state, with no query per job."""
    none, held, nothing, charged, unconfirmed = (make_job(owner, n=2) for _ in range(5))
    for job in (held, nothing, charged, unconfirmed):
        hold(job)
    ledger.release(nothing)
    ledger.settle(charged, 1)
    Job.objects.filter(pk=unconfirmed.pk).update(status=Job.FAILED, needs_review=True)
    ledger.adjust(owner, Decimal("0.10"), "goodwill", staff, job=charged)  # not part of a card's cost
    made = (none, held, nothing, charged, unconfirmed)
    each = {job.pk: ledger.job_cost(Job.objects.get(pk=job.pk)) for job in made}
    with django_assert_num_queries(1):
        together = {job.pk: ledger.job_cost(job) for job in ledger.with_costs(Job.objects.all())}
    assert together == each
    assert [together[job.pk].state for job in made] == [
        "none", "held", "nothing", "charged", "unconfirmed"]
