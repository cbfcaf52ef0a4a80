"""Money: holds, charges and releases, and the spend figures computed from them.

The ledger is append-only. A job gets one `hold` when it is created (n × unit price), then
exactly one settlement: a `release` of the whole hold plus, when images came back, one
`charge` of images × unit price. A unique constraint on (job, kind) makes a second
settlement impossible even if two workers race. Spend is always a query over these rows.
"""

import logging
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from studio.gateways import catalog
from studio.models import Budget, LedgerEntry, Price

log = logging.getLogger(__name__)

CENT = Decimal("0.01")


class BudgetExceeded(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


class PriceNotSet(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.message = message


def yuan(amount):
    """Format an amount for people: ¥1.50."""
    return f"¥{Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)}"


def unit_price(gateway, model):
    """The admin's price if one is set, else the gateway's documented price, else None."""
    row = Price.objects.filter(gateway=gateway, model=model).first()
    if row is not None:
        return row.unit_price
    found = catalog.offer(gateway, model)
    return found.documented_price if found else None


def month_start(when=None):
    when = timezone.localtime(when or timezone.now())
    return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def spend_between(entries, start):
    """Holds count until released, charges and adjustments count for good."""
    totals = dict(
        entries.filter(created__gte=start).values_list("kind").annotate(total=Sum("amount")).order_by()
    )
    zero = Decimal("0")
    return (
        totals.get(LedgerEntry.HOLD, zero)
        - totals.get(LedgerEntry.RELEASE, zero)
        + totals.get(LedgerEntry.CHARGE, zero)
        + totals.get(LedgerEntry.ADJUSTMENT, zero)
    )


def month_spend(user, when=None):
    return spend_between(LedgerEntry.objects.filter(user=user), month_start(when))


def team_month_spend(team, when=None):
    members = team.user_set.all()
    return spend_between(LedgerEntry.objects.filter(user__in=members), month_start(when))


def user_limit(user):
    budget = Budget.objects.filter(user=user).first()
    if budget is not None:
        return budget.monthly_limit
    default = settings.STUDIO_DEFAULT_MONTHLY_BUDGET
    return Decimal(default) if default else None


def remaining(user):
    """What the user may still spend this month (None: no limit)."""
    limit = user_limit(user)
    if limit is None:
        return None
    return limit - month_spend(user)


def lock_budgets(user):
    """Serialize concurrent holds of one user (and of their teams) on PostgreSQL.

    SQLite needs nothing more: its IMMEDIATE transactions already run one at a time.
    """
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    team_ids = list(user.groups.values_list("id", flat=True))
    return list(Budget.objects.select_for_update().filter(team_id__in=team_ids).order_by("id"))


def hold(job):
    """Reserve n × unit price for a new job. Call inside the job-creating transaction."""
    assert transaction.get_connection().in_atomic_block, "hold() must run inside the job's transaction"
    price = job.unit_price
    if price is None:
        raise PriceNotSet(f"No price is set for {job.model} on {job.gateway}; an admin must set one first.")
    amount = price * job.n_requested
    team_budgets = lock_budgets(job.owner)

    left = remaining(job.owner)
    if left is not None and amount > left:
        raise BudgetExceeded(
            f"This job would cost up to {yuan(amount)} but only {yuan(max(left, Decimal(0)))} "
            "is left of your monthly budget."
        )
    for budget in team_budgets:
        team_left = budget.monthly_limit - team_month_spend(budget.team)
        if amount > team_left:
            raise BudgetExceeded(
                f"This job would cost up to {yuan(amount)} but your team {budget.team.name} has only "
                f"{yuan(max(team_left, Decimal(0)))} left this month."
            )
    return LedgerEntry.objects.create(
        user=job.owner,
        job=job,
        kind=LedgerEntry.HOLD,
        amount=amount,
        images=job.n_requested,
        note=f"{job.n_requested} × {yuan(price)}",
    )


def settle(job, images):
    """Charge for the images received and release the hold; a second call does nothing.

    Call inside the transaction that moves the job to its final status.
    """
    held = LedgerEntry.objects.filter(job=job, kind=LedgerEntry.HOLD).first()
    if held is None:
        log.warning("job %s has no hold to settle", job.pk)
        return False
    if LedgerEntry.objects.filter(job=job, kind__in=[LedgerEntry.RELEASE, LedgerEntry.CHARGE]).exists():
        log.info("job %s is already settled", job.pk)
        return False
    try:
        with transaction.atomic():
            LedgerEntry.objects.create(
                user=job.owner,
                job=job,
                kind=LedgerEntry.RELEASE,
                amount=held.amount,
                images=held.images,
                note="hold released",
            )
            if images:
                price = job.unit_price or Decimal("0")
                LedgerEntry.objects.create(
                    user=job.owner,
                    job=job,
                    kind=LedgerEntry.CHARGE,
                    amount=price * images,
                    images=images,
                    note=f"{images} × {yuan(price)}",
                )
    except IntegrityError:
        # Someone settled it between our check and our insert: the constraint kept it to once.
        log.info("job %s was settled concurrently", job.pk)
        return False
    return True


def release(job):
    """Settle a job that produced nothing: the hold is released and nothing is charged."""
    return settle(job, 0)


def job_cost(job):
    """(held, charged) for a job card: held until settled, then what was charged."""
    rows = dict(
        LedgerEntry.objects.filter(job=job).values_list("kind").annotate(total=Sum("amount")).order_by()
    )
    return rows.get(LedgerEntry.HOLD), rows.get(
        LedgerEntry.CHARGE, Decimal("0")
    ) if LedgerEntry.RELEASE in rows else None


def spend_summary(user, months=6):
    """This month's figures and the totals of the months before, for the spend page."""
    start = month_start()
    limit = user_limit(user)
    spent = month_spend(user)
    history = []
    cursor = start
    for _ in range(months):
        previous = month_start(cursor - timezone.timedelta(days=1))
        entries = LedgerEntry.objects.filter(user=user, created__lt=cursor)
        history.append({"month": previous, "spent": spend_between(entries, previous)})
        cursor = previous
    open_holds = spend_between(
        LedgerEntry.objects.filter(user=user, kind__in=[LedgerEntry.HOLD, LedgerEntry.RELEASE]), start
    )
    return {
        "month": start,
        "spent": spent,
        "limit": limit,
        "remaining": None if limit is None else limit - spent,
        "percent": None if not limit else min(100, int(spent * 100 / limit)),
        "open_holds": open_holds,
        "images": sum(
            LedgerEntry.objects.filter(user=user, kind=LedgerEntry.CHARGE, created__gte=start).values_list(
                "images", flat=True
            )
        ),
        "history": history,
    }
