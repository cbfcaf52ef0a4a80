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
    # Not columns: what the flags count, from the same grouped query.
    stopped: int = 0
    partial: int = 0
    # Release rows summed (None: none yet); `released` is this less what was charged.
    release_rows: Decimal | None = None

    @property
    def per_image(self):
        return (self.charged / self.images).quantize(Decimal("0.0001")) if self.images else None

    def value(self, column):
        return getattr(self, column)

    def add_counts(self, found):
        for name in COUNTED:
            setattr(self, name, getattr(self, name) + found[name])

    def add_money(self, found):
        self.charged += money(found["charged"])
        self.images += found["images"] or 0
        self.unconfirmed += money(found["unconfirmed"])
        if found["released"] is not None:
            self.release_rows = (self.release_rows or ZERO) + money(found["released"])
        # A job's release is its whole hold; what it was charged came out of it.
        self.released = self.release_rows - self.charged if self.release_rows is not None else ZERO


@dataclass
class Report:
    period: Range
    by: str
    sort: str
    rows: list
    total: Row
    people_in_several_teams: list
    per_day: dict  # {day: {gateway: charged}}, for the chart


COUNTED = ("jobs", "failed", "stopped", "partial")
COUNTS = {
    "jobs": Count("id"),
    "failed": Count("id", filter=Q(status=Job.FAILED)),
    "stopped": Count("id", filter=Q(stopped_by_user=True)),
    "partial": Count("id", filter=Q(status=Job.PARTIAL)),
}
LEDGER_SUMS = {
    "charged": Sum("amount", filter=Q(kind=LedgerEntry.CHARGE)),
    "images": Sum("images", filter=Q(kind=LedgerEntry.CHARGE)),
    "released": Sum("amount", filter=Q(kind=LedgerEntry.RELEASE)),
    "unconfirmed": Sum(
        "amount", filter=Q(kind=LedgerEntry.HOLD, job__status=Job.FAILED, job__needs_review=True)
    ),
}
# What the database groups by: the group itself, except people, grouped by owner id (no join to
# the users) and, for teams, spread over the owner's teams here (so the totals and the chart
# count a person in two teams once).
GROUPED_BY = {"user": "owner_id", "team": "owner_id", "gateway": "gateway", "model": "model", "day": "day"}


def report(period, by, sort="-charged", owner=None):
    """The grouped figures for jobs made in `period` (only `owner`'s when given), the totals and
    the spend per day and gateway, from two grouped queries (three for teams)."""
    unit = GROUPED_BY[by]
    jobs = jobs_in(period, owner)
    counted = list(jobs.values(unit).annotate(**COUNTS).order_by())
    entries = LedgerEntry.objects.filter(job__day__gte=period.start, job__day__lte=period.end)
    if owner is not None:
        entries = entries.filter(job__owner=owner)
    summed = (
        entries.values(f"job__{unit}", "job__day", "job__gateway").annotate(**LEDGER_SUMS).order_by()
    )
    people = {found[unit] for found in counted} if by == "user" else ()
    names = dict(User.objects.filter(pk__in=people).values_list("pk", "username")) if people else {}
    teams = teams_of_people() if by == "team" else {}

    rows, total, per_day = {}, Row("", "Total"), {}

    def rows_of(value):
        """The rows a grouped value counts in: one, or each of a person's teams."""
        if by == "team":
            keys = teams.get(value, ("", []))[1] or [""]
        else:
            keys = [names[value] if by == "user" else key_text(value)]
        return [rows.get(key) or rows.setdefault(key, Row(key, group_label(by, value, key))) for key in keys]

    for found in counted:
        total.add_counts(found)
        for row in rows_of(found[unit]):
            row.add_counts(found)
    for found in summed:
        total.add_money(found)
        if found["charged"] is not None:
            day = per_day.setdefault(found["job__day"], {})
            day[found["job__gateway"]] = day.get(found["job__gateway"], ZERO) + money(found["charged"])
        for row in rows_of(found[f"job__{unit}"]):
            row.add_money(found)
    total.share = Decimal("100.0") if total.charged else None
    for row in rows.values():
        row.share = (row.charged / total.charged * 100).quantize(Decimal("0.1")) if total.charged else None
    several = sorted(teams[person][0] for person in (found[unit] for found in counted)
                     if len(teams.get(person, ("", []))[1]) > 1)
    return Report(period, by, sort, sort_rows(list(rows.values()), sort), total, several, per_day)


def teams_of_people():
    """{user id: (username, [team names])} for everyone in a team, in one query."""
    found = {}
    for user_id, username, team in User.groups.through.objects.values_list(
        "user_id", "user__username", "group__name"
    ).order_by("group__name"):
        found.setdefault(user_id, (username, []))[1].append(team)
    return found


def totals(period, owner=None):
    """The range's figures over every job once (team rows may count a person twice; this never)."""
    return report(period, "gateway", owner=owner).total


def money(total):
    """A sum as the ledger keeps amounts (four places): SQLite sums decimals as floats."""
    return Decimal(total or 0).quantize(Decimal("0.0001"))


def key_text(value):
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, date) else str(value)


def group_label(by, value, key):
    if by == "team":
        return key or NO_TEAM
    if by == "user":
        return key
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


def flags(found, budgets):
    """What needs a person, each with a count and what to open: `found` is the range's report,
    `budgets` its budget_rows()."""
    account_today = list(
        Job.objects.filter(day=timezone.localdate(), status=Job.FAILED, error_class="account")
        .values_list("gateway").annotate(count=Count("id")).order_by("gateway")
    )
    return {
        # Open whenever they were made: they wait for an admin, not for a range.
        "unconfirmed": Job.objects.filter(status=Job.FAILED, needs_review=True).count(),
        "stopped": found.total.stopped,
        "partial": found.total.partial,
        "account": [(catalog.GATEWAYS[key].display_name if key in catalog.GATEWAYS else key, count)
                    for key, count in account_today],
        "unpriced": unpriced_offers(),
        "near_budget": [row for row in budgets if row["warn"]],
    }


def unpriced_offers():
    prices = ledger.price_table()
    return [offer for offer in catalog.OFFERS if prices[(offer.gateway, offer.model)] is None]


def budget_rows():
    """Every budget with this month's spend, users and teams, then the people without one against
    the default budget; four queries whatever the number of budgets or people."""
    month = ledger.month_start().date()
    by_user = dict(
        LedgerEntry.objects.filter(month=month).values_list("user").annotate(total=signed_sum()).order_by()
    )
    by_team = {}
    for user_id, team_id in User.groups.through.objects.values_list("user_id", "group_id"):
        by_team[team_id] = by_team.get(team_id, ZERO) + (by_user.get(user_id) or ZERO)
    rows = []
    budgeted = set()
    for budget in Budget.objects.select_related("user", "team").order_by("team__name", "user__username"):
        spent = by_team.get(budget.team_id) if budget.team_id else by_user.get(budget.user_id)
        budgeted.add(budget.user_id)
        rows.append(budget_row(budget, budget.team.name if budget.team_id else budget.user.username,
                               "team" if budget.team_id else "user", spent or ZERO))
    if ledger.default_limit() is None:
        return rows
    others = [user for user in by_user if user not in budgeted]
    names = dict(User.objects.filter(pk__in=others).values_list("pk", "username"))
    for user in sorted(others, key=names.get):
        rows.append(budget_row(None, names[user], "user", by_user[user] or ZERO))
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
    by_model = report(this_month, "model", owner=user)
    return {
        "summary": summary,
        "per_image": by_gateway.total.per_image,
        "chart": charts.stacked_bars(recent.days, spend_per_day(recent, owner=user)),
        "breakdowns": [
            ("gateway", by_gateway),
            ("model", by_model),
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
