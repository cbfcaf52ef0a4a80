"""Cost review: who spent what over a date range, grouped by user, team, gateway, model or day.

Every figure is an aggregate computed in the database (two grouped queries a report, whatever
the data's size), from the same rows the ledger keeps:

    jobs         jobs created in the range
    images       images charged (the charge rows' image counts)
    charged      sum of charge rows
    per_image    charged ÷ images
    released     holds given back: release rows − charge rows (a settled job's hold is released
                 whole and its images charged apart)
    unconfirmed  holds of jobs whose submit went unanswered, until an admin resolves them
    failed       failed jobs
    share        charged ÷ the range's total charged

A job counts in the range by the day it was created (the ledger's own rule: a job's money
belongs to its creation month), in the portal's time zone. A user in two teams counts in both
team rows, so team rows can add up to more than the total; the page says so.
"""

import csv
import io
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.contrib.auth.models import User
from django.db.models import Count, Q, Sum
from django.utils import timezone

from studio import charts, ledger
from studio.gateways import catalog
from studio.models import Budget, Job, LedgerEntry, Price

GROUPINGS = {
    # by: (Job field path, label)
    "user": ("owner__username", "User"),
    "team": ("owner__groups__name", "Team"),
    "gateway": ("gateway", "Gateway"),
    "model": ("model", "Model"),
    "day": ("day", "Day"),  # Job.day, the date it was made
}
COLUMNS = [
    ("jobs", "Jobs"),
    ("images", "Images"),
    ("charged", "Charged"),
    ("per_image", "Per image"),
    ("released", "Released"),
    ("unconfirmed", "Unconfirmed"),
    ("failed", "Failed"),
    ("share", "Share"),
]
SORTS = {"key", *(name for name, _ in COLUMNS)}
PRESETS = {"today": "Today", "7d": "Last 7 days", "month": "This month", "last-month": "Last month"}
NO_TEAM = "(no team)"
ZERO = Decimal("0")
BUDGET_WARNING = Decimal("0.8")


class BadQuery(ValueError):
    """A query-string value the review does not know: shown as a message, never guessed."""


# --- the range -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    start: date  # first day, inclusive
    end: date  # last day, inclusive
    preset: str  # one of PRESETS, or "custom"

    @property
    def label(self):
        return PRESETS.get(self.preset) or f"{self.start:%b %-d, %Y} – {self.end:%b %-d, %Y}"

    @property
    def days(self):
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @property
    def query(self):
        """The query-string part that names this range."""
        if self.preset == "custom":
            return {"start": self.start.isoformat(), "end": self.end.isoformat()}
        return {"range": self.preset}

def parse_range(params, today=None):
    """The range a query string names: ?range=<preset> or ?start=YYYY-MM-DD&end=YYYY-MM-DD;
    this month by default. Raises BadQuery for anything else."""
    today = today or timezone.localdate()
    start_text, end_text = params.get("start", ""), params.get("end", "")
    if start_text or end_text:
        try:
            start, end = date.fromisoformat(start_text), date.fromisoformat(end_text)
        except ValueError:
            raise BadQuery("Give both dates as YYYY-MM-DD, e.g. ?start=2026-11-01&end=2026-11-30.") from None
        if end < start:
            raise BadQuery("The range ends before it starts.")
        if (end - start).days > 366:
            raise BadQuery("Choose a range of at most a year.")
        return Range(start, end, "custom")
    preset = params.get("range") or "month"
    month = today.replace(day=1)
    if preset == "today":
        return Range(today, today, preset)
    if preset == "7d":
        return Range(today - timedelta(days=6), today, preset)
    if preset == "month":
        return Range(month, today, preset)
    if preset == "last-month":
        last = month - timedelta(days=1)
        return Range(last.replace(day=1), last, preset)
    raise BadQuery(
        f"There is no range called {preset!r}; choose {', '.join(PRESETS)} or start and end dates."
    )


def parse_grouping(params):
    by = params.get("by") or "user"
    if by not in GROUPINGS:
        raise BadQuery(f"There is no grouping {by!r}; choose {', '.join(GROUPINGS)}.")
    return by


def parse_sort(params):
    sort = params.get("sort") or "-charged"
    if sort.lstrip("-") not in SORTS:
        raise BadQuery(f"There is no column {sort!r} to sort by.")
    return sort


# --- the report ----------------------------------------------------------------------------------


def jobs_in(period, owner=None):
    found = Job.objects.filter(day__gte=period.start, day__lte=period.end)
    return found.filter(owner=owner) if owner is not None else found


@dataclass
class Row:
    key: str  # what the drill-down filters on
    label: str
    jobs: int = 0
    images: int = 0
    charged: Decimal = ZERO
    released: Decimal = ZERO
    unconfirmed: Decimal = ZERO
    failed: int = 0
    share: Decimal | None = None

    @property
    def per_image(self):
        return (self.charged / self.images).quantize(Decimal("0.0001")) if self.images else None

    def value(self, column):
        return getattr(self, column)


@dataclass
class Report:
    period: Range
    by: str
    sort: str
    rows: list
    total: Row
    people_in_several_teams: list


def report(period, by, sort="-charged", owner=None, total=None):
    """The grouped figures for jobs made in `period` (only `owner`'s when given). `total` is the
    range's totals when the caller has them already."""
    path = GROUPINGS[by][0]
    jobs = jobs_in(period, owner)
    counted = jobs.values(path).annotate(
        jobs=Count("id", distinct=True), failed=Count("id", distinct=True, filter=Q(status=Job.FAILED))
    ).order_by()
    grouped = (
        LedgerEntry.objects.filter(job__in=jobs_in(period, owner))
        .values(f"job__{path}")
        .annotate(**LEDGER_SUMS)
        .order_by()
    )

    rows = {}
    for found in counted:
        key = key_text(found[path])
        rows[key] = Row(key, group_label(by, found[path]), jobs=found["jobs"], failed=found["failed"])
    for found in grouped:
        key = key_text(found[f"job__{path}"])
        row = rows.setdefault(key, Row(key, group_label(by, found[f"job__{path}"])))
        fill_money(row, found)
    if total is None:
        # Every job is in exactly one group, but for teams (a person in two counts twice).
        total = totals(period, owner) if by == "team" else sum_of(rows.values())
    for row in rows.values():
        row.share = (row.charged / total.charged * 100).quantize(Decimal("0.1")) if total.charged else None
    ordered = sort_rows(list(rows.values()), sort)
    several = people_in_several_teams(jobs_in(period, owner)) if by == "team" else []
    return Report(period, by, sort, ordered, total, several)


LEDGER_SUMS = {
    "charged": Sum("amount", filter=Q(kind=LedgerEntry.CHARGE)),
    "images": Sum("images", filter=Q(kind=LedgerEntry.CHARGE)),
    "released": Sum("amount", filter=Q(kind=LedgerEntry.RELEASE)),
    "unconfirmed": Sum(
        "amount", filter=Q(kind=LedgerEntry.HOLD, job__status=Job.FAILED, job__needs_review=True)
    ),
}


def fill_money(row, sums):
    row.charged = money(sums["charged"])
    row.images = sums["images"] or 0
    # A job's release is its whole hold; what it was charged came out of it.
    row.released = money(sums["released"]) - row.charged if sums["released"] else ZERO
    row.unconfirmed = money(sums["unconfirmed"])


def sum_of(rows):
    total = Row("", "Total")
    for row in rows:
        for name in ("jobs", "images", "charged", "released", "unconfirmed", "failed"):
            setattr(total, name, getattr(total, name) + getattr(row, name))
    total.share = Decimal("100.0") if total.charged else None
    return total


def totals(period, owner=None):
    """The range's figures over every job once (team rows may count a person twice; this never)."""
    jobs = jobs_in(period, owner)
    counted = jobs.aggregate(jobs=Count("id"), failed=Count("id", filter=Q(status=Job.FAILED)))
    total = Row("", "Total", jobs=counted["jobs"], failed=counted["failed"])
    fill_money(total, LedgerEntry.objects.filter(job__in=jobs).aggregate(**LEDGER_SUMS))
    total.share = Decimal("100.0") if total.charged else None
    return total


def money(total):
    """A sum as the ledger keeps amounts (four places): SQLite sums decimals as floats."""
    return Decimal(total or 0).quantize(Decimal("0.0001"))


def key_text(value):
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


def group_label(by, value):
    if by == "team":
        return value or NO_TEAM
    if by == "gateway":
        found = catalog.GATEWAYS.get(value)
        return found.display_name if found else value
    if by == "model":
        found = next((offer for offer in catalog.OFFERS if offer.model == value), None)
        return found.display_name if found else value
    if by == "day":
        return value.isoformat()
    return value


def sort_rows(rows, sort):
    column = sort.lstrip("-")
    descending = sort.startswith("-")
    if column == "key":
        return sorted(rows, key=lambda row: row.label.lower(), reverse=descending)
    # Rows without a figure (no images, so no per-image cost) go last either way.
    present = [row for row in rows if row.value(column) is not None]
    absent = [row for row in rows if row.value(column) is None]
    present.sort(key=lambda row: (row.value(column), row.label.lower()), reverse=descending)
    return present + sorted(absent, key=lambda row: row.label.lower())


def people_in_several_teams(jobs):
    """Usernames of people with jobs in the range who belong to more than one team."""
    owners = jobs.values("owner")
    return sorted(
        User.objects.filter(pk__in=owners)
        .annotate(teams=Count("groups"))
        .filter(teams__gt=1)
        .values_list("username", flat=True)
    )


def drill_down(period, by, key, only="", owner=None):
    """The jobs behind one figure: created in the range, in the group, optionally only those
    failed / unconfirmed / stopped / partial / with an account error."""
    jobs = jobs_in(period, owner)
    if by:
        path = GROUPINGS[by][0]
        if by == "day":
            jobs = jobs.filter(day=date.fromisoformat(key)) if key else jobs.none()
        elif by == "team" and key == "":
            jobs = jobs.filter(owner__groups__isnull=True)
        else:
            jobs = jobs.filter(**{path: key})
    return filter_only(jobs, only).distinct()


ONLY = {
    "": Q(),
    "failed": Q(status=Job.FAILED),
    "unconfirmed": Q(status=Job.FAILED, needs_review=True),
    "stopped": Q(stopped_by_user=True),
    "partial": Q(status=Job.PARTIAL),
    "account": Q(status=Job.FAILED, error_class="account"),
}


def filter_only(jobs, only):
    if only not in ONLY:
        raise BadQuery(f"There is no job filter {only!r}.")
    return jobs.filter(ONLY[only])


def job_rows(jobs):
    """The staff job list: each job with its owner and what it was charged, in two queries."""
    rows = list(jobs.select_related("owner").order_by("-id"))
    charges = dict(
        LedgerEntry.objects.filter(job__in=[job.pk for job in rows], kind=LedgerEntry.CHARGE)
        .values_list("job_id", "amount")
    )
    images = dict(
        LedgerEntry.objects.filter(job__in=[job.pk for job in rows], kind=LedgerEntry.CHARGE)
        .values_list("job_id", "images")
    )
    for job in rows:
        job.charge = charges.get(job.pk, ZERO)
        job.images_charged = images.get(job.pk, 0)
    return rows


# --- the chart ---------------------------------------------------------------------------------------


def spend_per_day(period, owner=None):
    """{day: {gateway: charged}} for the range, one grouped query."""
    entries = LedgerEntry.objects.filter(job__in=jobs_in(period, owner), kind=LedgerEntry.CHARGE)
    found = {}
    grouped = entries.values_list("job__day", "job__gateway").annotate(total=Sum("amount")).order_by()
    for day, gateway, amount in grouped:
        found.setdefault(day, {})[gateway] = money(amount)
    return found


# --- flags ---------------------------------------------------------------------------------------------


def flags(period, budgets):
    """What needs a person, each with a count and what to open; `budgets` are budget_rows()."""
    jobs = jobs_in(period)
    account_today = list(
        Job.objects.filter(day=timezone.localdate(), status=Job.FAILED, error_class="account")
        .values_list("gateway").annotate(count=Count("id")).order_by("gateway")
    )
    return {
        # Open whenever they were made: they wait for an admin, not for a range.
        "unconfirmed": Job.objects.filter(status=Job.FAILED, needs_review=True).count(),
        "stopped": jobs.filter(stopped_by_user=True).count(),
        "partial": jobs.filter(status=Job.PARTIAL).count(),
        "account": [(catalog.GATEWAYS[key].display_name if key in catalog.GATEWAYS else key, count)
                    for key, count in account_today],
        "unpriced": unpriced_offers(),
        "near_budget": [row for row in budgets if row["warn"]],
    }


def unpriced_offers():
    prices = ledger.price_table()
    return [offer for offer in catalog.OFFERS if prices[(offer.gateway, offer.model)] is None]


def budget_rows():
    """Every budget with this month's spend, users and teams, and the default for the others;
    three queries whatever the number of budgets."""
    month = ledger.month_start().date()
    spend = LedgerEntry.objects.filter(month=month)
    by_user = dict(spend.values_list("user").annotate(total=signed_sum()).order_by())
    by_team = dict(spend.values_list("user__groups").annotate(total=signed_sum()).order_by())
    rows = []
    for budget in Budget.objects.select_related("user", "team").order_by("team__name", "user__username"):
        spent = by_team.get(budget.team_id) if budget.team_id else by_user.get(budget.user_id)
        rows.append(budget_row(budget, budget.team.name if budget.team_id else budget.user.username,
                               "team" if budget.team_id else "user", spent or ZERO))
    return rows


def budget_row(budget, name, kind, spent):
    limit = budget.monthly_limit if budget else ledger.default_limit()
    percent = min(100, int(spent * 100 / limit)) if limit else None
    return {"budget": budget, "name": name, "kind": kind, "limit": limit, "spent": spent, "percent": percent,
            "warn": bool(limit) and spent >= limit * BUDGET_WARNING, "over": bool(limit) and spent >= limit}


def signed_sum():
    """Spend as the ledger counts it: holds until released, charges and adjustments for good."""
    return Sum(
        "amount", filter=Q(kind__in=[LedgerEntry.HOLD, LedgerEntry.CHARGE, LedgerEntry.ADJUSTMENT])
    ) - Sum("amount", filter=Q(kind=LedgerEntry.RELEASE), default=ZERO)


def default_budget_users():
    """People without a budget of their own, against the default one, this month."""
    limit = ledger.default_limit()
    if limit is None:
        return []
    month = ledger.month_start().date()
    spend = (
        LedgerEntry.objects.filter(month=month, user__budget__isnull=True)
        .values_list("user__username").annotate(total=signed_sum()).order_by()
    )
    return [budget_row(None, name, "user", total or ZERO) for name, total in spend]


def price_rows():
    """Per gateway × model: the price in force, where it comes from and since when."""
    set_by_admin = {(row.gateway, row.model): row for row in Price.objects.all()}
    rows = []
    for offer in catalog.OFFERS:
        row = set_by_admin.get((offer.gateway, offer.model))
        rows.append({
            "offer": offer,
            "price": row.unit_price if row else offer.documented_price,
            "source": "set by an admin" if row else ("documented" if offer.documented_price else ""),
            "since": row.updated if row else None,
            "row": row,
        })
    return rows


# --- CSV ------------------------------------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """A cell a spreadsheet shows as text: one that starts like a formula gets a leading '."""
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value:f}"
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


def csv_text(found):
    """The report as on screen: a header, a row a group, the totals row; plain decimals."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([GROUPINGS[found.by][1], *(label for _, label in COLUMNS)])
    for row in [*found.rows, found.total]:
        writer.writerow([safe_cell(row.label), *(safe_cell(row.value(name)) for name, _ in COLUMNS)])
    return out.getvalue()


def ordered_columns(sort):
    """(name, label, the sort a click on its heading asks for) for each column."""
    current = sort.lstrip("-")
    descending = sort.startswith("-")
    return [
        (name, label, f"{'' if current == name and descending else '-'}{name}")
        for name, label in [("key", "Group"), *COLUMNS]
    ]


# --- a person's own spend ---------------------------------------------------------------------------

LAST_DAYS = 30


def spend_overview(user):
    """What the Spend page shows: this month's summary, the last 30 days per gateway, this
    month by gateway and by model, and the month's ledger one row per job (a queryset)."""
    summary = ledger.spend_summary(user)
    month = summary["month"].date()
    today = timezone.localdate()
    this_month = Range(month, today, "month")
    recent = Range(today - timedelta(days=LAST_DAYS - 1), today, "custom")
    by_gateway = report(this_month, "gateway", owner=user)
    return {
        "summary": summary,
        "per_image": by_gateway.total.per_image,
        "chart": charts.stacked_bars(recent.days, spend_per_day(recent, owner=user)),
        "breakdowns": [
            ("gateway", by_gateway),
            ("model", report(this_month, "model", owner=user, total=by_gateway.total)),
        ],
        "statement": ledger.job_statement(user, month),
        "adjustments": ledger.month_adjustments(user, month),
    }


STATEMENT_COLUMNS = [
    "job", "made", "gateway", "model", "status", "images asked", "held", "charged", "released"
]


def statement_csv(user, month):
    """A month of the user's ledger: one row per job, then the adjustments with their reason."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(STATEMENT_COLUMNS)
    for job in ledger.job_statement(user, month):
        settled = job.released is not None
        writer.writerow([
            job.pk, job.created.isoformat(), job.gateway, job.model, job.status, job.n_requested,
            safe_cell(money(job.held)),
            safe_cell(money(job.charged) if settled else None),
            safe_cell(money(job.released) if settled else None),
        ])
    for entry in ledger.month_adjustments(user, month):
        when, reason, amount = entry.created.isoformat(), safe_cell(entry.note), safe_cell(entry.amount)
        writer.writerow(["adjustment", when, "", "", reason, "", "", amount, ""])
    return out.getvalue()
