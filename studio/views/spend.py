"""The Spend page: this month against the budget, the last 30 days, breakdowns, and the ledger
one row per job; and a CSV of a month's ledger."""

from datetime import date

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from studio import ledger, review


@require_GET
@login_required
def index(request):
    context = review.spend_overview(request.user)
    context["page"] = Paginator(context.pop("statement"), 50).get_page(request.GET.get("page"))
    return render(request, "spend/index.html", context)


@require_GET
@login_required
def export_csv(request):
    """The user's own ledger for one month (?month=YYYY-MM; this month when absent)."""
    try:
        month = date.fromisoformat(f"{request.GET['month']}-01") if request.GET.get("month") else None
    except ValueError:
        return HttpResponse("Give the month as YYYY-MM.", status=400, content_type="text/plain")
    month = month or ledger.month_start().date()
    response = HttpResponse(review.statement_csv(request.user, month), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="image-studio-spend-{month:%Y-%m}.csv"'
    return response


@require_GET
@login_required
def badge(request):
    """The header's spend figure, re-fetched when the server says spend changed."""
    return render(request, "partials/header_spend.html")
