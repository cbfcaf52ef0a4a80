"""Spend belongs to the month a job was created in, whenever its hold, charge and release are
written: property test over jobs created and settled around month boundaries."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from studio import ledger
from studio.models import Budget, Job, LedgerEntry

PRICE = Decimal("0.20")
LIMIT = Decimal("2.00")
# Around two month boundaries: Jan 31 → Feb 1 and Feb 28 → Mar 1 (UTC, the portal's zone here).
START = datetime(2027, 1, 31, 20, 0, tzinfo=UTC)

steps = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.integers(min_value=1, max_value=4)),
        st.tuples(st.just("settle"), st.integers(0, 40), st.integers(0, 4)),
        st.tuples(st.just("wait"), st.integers(min_value=1, max_value=60 * 24 * 20)),  # minutes
    ),
    max_size=30,
)


class Clock:
    def __init__(self):
        self.now = START

    def __call__(self):
        return self.now


def first_moment(month):
    return datetime.combine(month, datetime.min.time(), UTC)


def month_of(when):
    return timezone.localtime(when).date().replace(day=1)


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps)
def test_each_months_spend_is_the_charges_of_that_months_jobs(owner, monkeypatch, steps):
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    with transaction.atomic():
        Budget.objects.create(user=owner, monthly_limit=LIMIT)
        made = []
        for step in steps:
            if step[0] == "wait":
                clock.now += timedelta(minutes=step[1])
            elif step[0] == "create":
                n = step[1]
                job = Job.objects.create(
                    owner=owner, gateway="apimart", model="wan2.7-image", mode="text-to-image",
                    request={}, n_requested=n, unit_price=PRICE, hold_amount=PRICE * n,
                )
                try:
                    with transaction.atomic():
                        ledger.hold(job)
                    made.append(job)
                except ledger.BudgetExceeded:
                    job.delete()
            elif made:
                job = made[step[1] % len(made)]
                ledger.settle(job, min(step[2], job.n_requested))
            for month in {month_of(job.created) for job in made} | {month_of(clock.now)}:
                spent = ledger.month_spend(owner, when=first_moment(month))
                assert Decimal(0) <= spent <= LIMIT, (month, spent)
        for job in made:
            ledger.settle(job, job.n_requested)  # no-op for those already settled
        for month in {month_of(job.created) for job in made}:
            of_month = [job for job in made if month_of(job.created) == month]
            charges = LedgerEntry.objects.filter(kind="charge", job__in=of_month)
            expected = sum(charges.values_list("amount", flat=True), Decimal(0))
            assert ledger.month_spend(owner, when=first_moment(month)) == expected
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_a_job_held_on_the_31st_and_settled_on_the_1st_counts_in_january(owner, monkeypatch):
    clock = Clock()
    monkeypatch.setattr(timezone, "now", clock)
    job = Job.objects.create(
        owner=owner, gateway="apimart", model="wan2.7-image", mode="text-to-image",
        request={}, n_requested=4, unit_price=PRICE, hold_amount=PRICE * 4,
    )
    with transaction.atomic():
        ledger.hold(job)
    clock.now = START + timedelta(hours=6)  # February 1st, 02:00
    ledger.settle(job, 0)  # failed: nothing charged
    assert ledger.month_spend(owner) == 0  # February is not negative
    assert ledger.month_spend(owner, when=START) == 0
    assert set(LedgerEntry.objects.values_list("month", flat=True)) == {START.date().replace(day=1)}
