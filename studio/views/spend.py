from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.views.decorators.http import require_GET

from studio import ledger
from studio.models import LedgerEntry


@require_GET
@login_required
def index(request):
    entries = LedgerEntry.objects.filter(user=request.user).select_related("job").order_by("-id")
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    context = {"summary": ledger.spend_summary(request.user), "page": page}
    return render(request, "spend/index.html", context)


@require_GET
@login_required
def badge(request):
    """The header's spend figure, re-fetched when the server says spend changed."""
    return render(request, "partials/header_spend.html")
