"""Cost review for staff: spend by user, team, gateway, model or day over a date range, the jobs
behind every figure, a CSV of what is on screen, and what needs a person. Everyone else gets 404."""

from functools import wraps
from urllib.parse import urlencode

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from studio import charts, operations, review
from studio.models import Job
from studio.paging import keyset_page

TEMPLATE = "review/index.html"
JOBS_PAGE = 100


def staff_only(view):
    """404 for anyone but staff: the review's URLs reveal nothing to others."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_staff:
            raise Http404
        return view(request, *args, **kwargs)

    return wrapped


def report_from(params):
    """The report a query string asks for (range, grouping, sort), or a BadQuery to show."""
    period = review.parse_range(params)
    return review.report(period, review.parse_grouping(params), review.parse_sort(params))


@require_GET
@staff_only
def index(request: HttpRequest):
    try:
        found = report_from(request.GET)
    except review.BadQuery as problem:
        return render(request, TEMPLATE, {"problem": str(problem)}, status=400)
    period = found.period
    budgets = review.budget_rows()
    context = {
        "report": found,
        "columns": review.ordered_columns(found.sort),
        "groupings": review.GROUPINGS,
        "presets": review.PRESETS,
        "range_query": period.query,
        # Every figure's drill-down link starts the same; rows add their group.
        "drill": f"{reverse('review_jobs')}?{urlencode({**period.query, 'by': found.by})}",
        "chart": charts.stacked_bars(period.days, found.per_day),
        "flags": review.flags(found, budgets),
        "budgets": budgets,
        "prices": review.price_rows(),
    }
    return render(request, TEMPLATE, context)


@require_GET
@staff_only
def export_csv(request: HttpRequest):
    try:
        found = report_from(request.GET)
    except review.BadQuery as problem:
        return HttpResponse(str(problem), status=400, content_type="text/plain; charset=utf-8")
    response = HttpResponse(review.csv_text(found), content_type="text/csv; charset=utf-8")
    period = found.period
    name = f"cost-review-by-{found.by}-{period.start.isoformat()}-to-{period.end.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
@staff_only
def job_list(request: HttpRequest):
    """The jobs behind a figure: same range and grouping, one group, optionally one kind."""
    try:
        period = review.parse_range(request.GET)
        by = request.GET.get("by", "")
        if by and by not in review.GROUPINGS:
            raise review.BadQuery(f"There is no grouping {by!r}.")
        jobs = review.drill_down(period, by, request.GET.get("group", ""), request.GET.get("only", ""))
    except (review.BadQuery, ValueError) as problem:
        return render(request, "review/jobs.html", {"problem": str(problem)}, status=400)
    rows, next_before = keyset_page(jobs, request.GET.get("before"), JOBS_PAGE)
    query = {key: value for key, value in request.GET.items() if key != "before"}
    context = {"jobs": review.job_rows(Job.objects.filter(pk__in=[job.pk for job in rows])),
               "period": period, "query": query, "next_before": next_before}
    return render(request, "review/jobs.html", context)


@require_GET
@staff_only
def job_detail(request: HttpRequest, pk: int):
    """Any job's card with its whole history, for staff."""
    job = get_object_or_404(Job.objects.prefetch_related("images", "shares", "events"), pk=pk)
    return render(request, "review/job.html", {"job": job, "events": job.events.all()})


@require_GET
@staff_only
def system(request: HttpRequest):
    """Operations: workers and lanes with their heartbeats, queue depth, the oldest active job,
    and each gateway's last hour."""
    return render(request, "review/system.html", operations.system())
