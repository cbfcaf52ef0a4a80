"""Money: holds, charges and releases, and the spend figures computed from them.

The ledger is append-only. A job gets one `hold` when it is created (n × unit price), then
exactly one settlement: a `release` of the whole hold plus, when images came back, one
`charge` of images × unit price. A unique constraint on (job, kind) makes a second
settlement impossible even if two workers race. Spend is always a query over these rows.
"""

import logging
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import DecimalField, Exists, OuterRef, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from studio.gateways import catalog
from studio.models import Budget, Image, Job, LedgerEntry, Price, this_month

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


def price_table():
    """{(gateway, model): unit price or None} for every offer in the catalog, in one query."""
    set_by_admin = {(row.gateway, row.model): row.unit_price for row in Price.objects.all()}
    return {
        (found.gateway, found.model): set_by_admin.get((found.gateway, found.model), found.documented_price)
        for found in catalog.OFFERS
    }


def month_start(when=None):
    when = timezone.localtime(when or timezone.now())
    return when.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_of(job=None):
    """The month a ledger row counts in: its job's creation month, so a job's hold, charge,
    release and any adjustment of it all land in one month, whenever each was written; a row
    without a job counts in the month it is written."""
    return month_start(job.created).date() if job is not None else this_month()


def spend_in_month(entries, month):
    """Holds count until released, charges and adjustments count for good."""
    totals = dict(entries.filter(month=month).values_list("kind").annotate(total=Sum("amount")).order_by())
    zero = Decimal("0")
    return (
        totals.get(LedgerEntry.HOLD, zero)
        - totals.get(LedgerEntry.RELEASE, zero)
        + totals.get(LedgerEntry.CHARGE, zero)
        + totals.get(LedgerEntry.ADJUSTMENT, zero)
    )


def month_spend(user, when=None):
    return spend_in_month(LedgerEntry.objects.filter(user=user), month_start(when).date())


def team_month_spend(team, when=None):
    members = team.user_set.all()
    return spend_in_month(LedgerEntry.objects.filter(user__in=members), month_start(when).date())


def user_limit(user):
    budget = Budget.objects.filter(user=user).first()
    if budget is not None:
        return budget.monthly_limit
    return default_limit()


def default_limit():
    """The monthly budget of a user without one of their own (None: no limit)."""
    default = settings.STUDIO_DEFAULT_MONTHLY_BUDGET
    return Decimal(default) if default else None


def remaining(user):
    """What the user may still spend this month (None: no limit)."""
    limit = user_limit(user)
    if limit is None:
        return None
    return limit - month_spend(user)


def left_and_over(left):
    """(what to show as left, how far over the budget it is): what is left never shows below
    ¥0.00 (an admin may lower a budget below what was spent); None left means no limit."""
    if left is None:
        return None, Decimal(0)
    return max(left, Decimal(0)), max(-left, Decimal(0))


def lock_budgets(user):
    """Serialize concurrent holds of one user (and of their teams) on PostgreSQL.

    SQLite needs nothing more: its IMMEDIATE transactions already run one at a time.
    """
    get_user_model().objects.select_for_update().filter(pk=user.pk).first()
    team_ids = list(user.groups.values_list("id", flat=True))
    return list(Budget.objects.select_for_update().filter(team_id__in=team_ids).order_by("id"))


@dataclass(frozen=True)
class Quote:
    """What `n` images would cost a user now, and whether their budgets allow it."""

    price: Decimal | None  # per image; None: no price is set for this gateway and model
    total: Decimal | None  # price × n; None without a price or a usable n
    left: Decimal | None  # of the user's monthly budget; None: no limit
    fits: bool
    problem: str = ""  # why it does not fit, in plain words


def quote(user, gateway, model, n):
    """Price, total and what is left for `n` images of `model` on `gateway`.

    The one place a job's cost is worked out: the create page's cost line shows it, and
    jobs.create_job() records its price and total on the job, which hold() then enforces.
    """
    price = unit_price(gateway, model)
    left = remaining(user)
    if price is None or isinstance(n, bool) or not isinstance(n, int) or n < 1:
        return Quote(price, None, left, False)
    total = price * n
    problem = budget_problem(user, total, left, team_budgets_of(user))
    return Quote(price, total, left, not problem, problem)


def team_budgets_of(user):
    return list(Budget.objects.filter(team__in=user.groups.all()).select_related("team").order_by("id"))


def budget_problem(user, amount, left, team_budgets):
    """Why `amount` more does not fit the user's or a team's monthly budget ("" when it fits)."""
    if left is not None and amount > left:
        return (
            f"This job would cost up to {yuan(amount)} but only {yuan(max(left, Decimal(0)))} "
            "is left of your monthly budget."
        )
    for budget in team_budgets:
        team_left = budget.monthly_limit - team_month_spend(budget.team)
        if amount > team_left:
            return (
                f"This job would cost up to {yuan(amount)} but your team {budget.team.name} has only "
                f"{yuan(max(team_left, Decimal(0)))} left this month."
            )
    return ""


def hold(job):
    """Reserve the job's quoted total (n × unit price). Call inside the job-creating transaction."""
    assert transaction.get_connection().in_atomic_block, "hold() must run inside the job's transaction"
    if job.unit_price is None:
        raise PriceNotSet(f"No price is set for {job.model} on {job.gateway}; an admin must set one first.")
    team_budgets = lock_budgets(job.owner)  # before reading what is left, so no one else spends it
    problem = budget_problem(job.owner, job.hold_amount, remaining(job.owner), team_budgets)
    if problem:
        raise BudgetExceeded(problem)
    return LedgerEntry.objects.create(
        user=job.owner,
        job=job,
        kind=LedgerEntry.HOLD,
        amount=job.hold_amount,
        images=job.n_requested,
        note=f"{job.n_requested} × {yuan(job.unit_price)}",
        month=month_of(job),
    )


def settle(job, images, recorded_by=None, note=""):
    """Charge for the images received and release the hold; a second call does nothing.

    Call inside the transaction that moves the job to its final status (or, for a job whose
    submit went unanswered, when a staff member `recorded_by` resolves it, saying why in `note`).
    """
    held = LedgerEntry.objects.filter(job=job, kind=LedgerEntry.HOLD).first()
    if held is None:
        log.warning("job %s has no hold to settle", job.pk)
        return False
    if LedgerEntry.objects.filter(job=job, kind__in=[LedgerEntry.RELEASE, LedgerEntry.CHARGE]).exists():
        log.info("job %s is already settled", job.pk)
        return False
    by_hand = {"recorded_by": recorded_by} if recorded_by is not None else {}
    try:
        with transaction.atomic():
            LedgerEntry.objects.create(
                user_id=job.owner_id,  # the id: the User row is not needed (one query less)
                job=job,
                kind=LedgerEntry.RELEASE,
                amount=held.amount,
                images=held.images,
                note=(note or "hold released")[:200],
                month=held.month,
                **by_hand,
            )
            if images:
                price = job.unit_price or Decimal("0")
                LedgerEntry.objects.create(
                    user_id=job.owner_id,
                    job=job,
                    kind=LedgerEntry.CHARGE,
                    amount=price * images,
                    images=images,
                    note=(f"{images} × {yuan(price)}" + (f": {note}" if note else ""))[:200],
                    month=held.month,
                    **by_hand,
                )
    except IntegrityError:
        # Someone settled it between our check and our insert: the constraint kept it to once.
        log.info("job %s was settled concurrently", job.pk)
        return False
    return True


def release(job):
    """Settle a job that produced nothing: the hold is released and nothing is charged."""
    return settle(job, 0)


def adjust(user, amount, reason, staff, job=None):
    """A correction by a staff member: `amount` added to (or, negative, taken off) the user's
    spend, with the reason on record. The only way money changes by hand."""
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("Say why the adjustment is made.")
    if staff is None or not staff.is_staff:
        raise ValueError("Only staff can adjust the ledger.")
    return LedgerEntry.objects.create(
        user=user,
        job=job,
        kind=LedgerEntry.ADJUSTMENT,
        amount=Decimal(amount),
        note=reason[:200],
        recorded_by=staff,
        month=month_of(job),
    )


@dataclass(frozen=True)
class JobCost:
    """A job's money as its card tells it."""

    held: Decimal | None  # the hold placed when it was created (None: no hold)
    charged: Decimal | None  # what it was charged once settled (None: not settled yet)
    released: Decimal | None  # the hold given back once settled
    finished: bool = False  # the job is in a final status

    @property
    def state(self):
        """ "held" while the job runs; "unconfirmed" when it ended without knowing what the gateway
        did (its submit went unanswered: the hold stays until an admin resolves it); "charged"
        when it cost something, "nothing" when it did not; "none" for a job without a hold."""
        if self.charged is None:
            if self.held is None:
                return "none"
            return "unconfirmed" if self.finished else "held"
        return "charged" if self.charged else "nothing"


def with_costs(jobs):
    """`jobs` (a Job queryset) with each job's hold, charge and release read in the same query,
    so a page of cards costs one query however many cards it has; job_cost() reads them.

    One row per kind at most: LedgerEntry's unique (job, kind) for hold, charge and release.
    """
    rows = LedgerEntry.objects.filter(job=OuterRef("pk"))
    return jobs.annotate(
        ledger_held=Subquery(rows.filter(kind=LedgerEntry.HOLD).values("amount")[:1]),
        ledger_charged=Subquery(rows.filter(kind=LedgerEntry.CHARGE).values("amount")[:1]),
        ledger_released=Subquery(rows.filter(kind=LedgerEntry.RELEASE).values("amount")[:1]),
    )


def job_cost(job):
    """What the job's card says about its money: from the amounts with_costs() put on the job
    when it came through it, else from one query of its own."""
    if hasattr(job, "ledger_held"):
        held, charged, released = job.ledger_held, job.ledger_charged, job.ledger_released
    else:
        rows = dict(
            LedgerEntry.objects.filter(job=job).values_list("kind").annotate(total=Sum("amount")).order_by()
        )
        held, charged = rows.get(LedgerEntry.HOLD), rows.get(LedgerEntry.CHARGE)
        released = rows.get(LedgerEntry.RELEASE)
    return JobCost(
        held=held,
        # Settled (released) without a charge row: it cost nothing.
        charged=(charged or Decimal("0")) if released is not None else None,
        released=released,
        finished=job.status not in Job.ACTIVE_STATUSES,
    )


def open_holds(entries):
    """(held for running jobs, unconfirmed) among these entries: holds not yet released, split
    by whether their job is still running or ended with its submit unanswered."""
    released = LedgerEntry.objects.filter(job=OuterRef("job"), kind=LedgerEntry.RELEASE)
    rows = (
        entries.filter(kind=LedgerEntry.HOLD)
        .exclude(Exists(released))
        .values_list("job__status")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    held = unconfirmed = Decimal("0")
    for status, total in rows:
        if status not in Job.ACTIVE_STATUSES:
            unconfirmed += total
        else:
            held += total
    return held, unconfirmed


def spend_summary(user, months=6):
    """This month's figures and the totals of the months before, for the spend page."""
    start = month_start()
    limit = user_limit(user)
    spent = month_spend(user)
    mine = LedgerEntry.objects.filter(user=user)
    history = []
    cursor = start
    for _ in range(months):
        previous = month_start(cursor - timezone.timedelta(days=1))
        history.append({"month": previous, "spent": spend_in_month(mine, previous.date())})
        cursor = previous
    held, unconfirmed = open_holds(mine.filter(month=start.date()))
    left, over_by = left_and_over(None if limit is None else limit - spent)
    return {
        "month": start,
        "spent": spent,
        "limit": limit,
        "remaining": left,
        "over_by": over_by,
        "percent": None if not limit else min(100, int(spent * 100 / limit)),
        "open_holds": held,
        "unconfirmed": unconfirmed,
        "images": mine.filter(kind=LedgerEntry.CHARGE, month=start.date()).aggregate(
            total=Sum("images", default=0)
        )["total"],
        "history": history,
    }


def job_statement(user, month):
    """The user's jobs made in `month` (a first-of-month date), newest first, each with what it
    held, was charged and had released, and its first thumbnail: one row per job, not one per
    ledger row. A queryset, so the page can paginate it."""
    rows = LedgerEntry.objects.filter(job=OuterRef("pk"))
    first_image = Image.objects.filter(job=OuterRef("pk")).order_by("index").values("pk")[:1]
    return (
        Job.objects.filter(owner=user, ledger_entries__month=month, ledger_entries__kind=LedgerEntry.HOLD)
        .annotate(
            held=Subquery(rows.filter(kind=LedgerEntry.HOLD).values("amount")[:1]),
            charged=Coalesce(
                Subquery(rows.filter(kind=LedgerEntry.CHARGE).values("amount")[:1]),
                Value(Decimal("0")),
                output_field=DecimalField(max_digits=12, decimal_places=4),
            ),
            released=Subquery(rows.filter(kind=LedgerEntry.RELEASE).values("amount")[:1]),
            thumb=Subquery(first_image),
        )
        .order_by("-id")
    )


def month_adjustments(user, month):
    return LedgerEntry.objects.filter(user=user, month=month, kind=LedgerEntry.ADJUSTMENT).select_related(
        "recorded_by"
    ).order_by("-id")
