"""Job history, job cards, the one poller for active cards, and a card's actions."""

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from studio import jobs, ledger, teams
from studio.access import get_own_or_404, get_owned_or_404, to_id
from studio.gateways import catalog
from studio.models import Image, Job
from studio.paging import keyset_page
from studio.templatetags import job_cards
from studio.views.files import zip_download

TEMPLATE = "jobs/index.html"
PAGE_SIZE = 20
FILTERS = ("status", "model", "gateway", "mode", "q", "since", "until")


def visible_jobs(user):
    found = Job.objects.filter(owner=user, hidden=False).prefetch_related("images", "shares", "team_shares")
    return ledger.with_costs(found)


def filtered(user, params):
    found = visible_jobs(user)
    if params.get("status") == "active":
        found = found.filter(status__in=Job.ACTIVE_STATUSES)
    elif params.get("status"):
        found = found.filter(status=params["status"])
    for name in ("model", "gateway", "mode"):
        if params.get(name):
            found = found.filter(**{name: params[name]})
    if params.get("q"):
        found = found.filter(prompt__icontains=params["q"].strip())
    since, until = date_param(params.get("since")), date_param(params.get("until"))
    if since:
        found = found.filter(created__date__gte=since)
    if until:
        found = found.filter(created__date__lte=until)
    return found


def date_param(text):
    try:
        return parse_date(text or "")
    except ValueError:
        return None  # well formed but no such day (2024-02-30): no filter rather than a 500


def filter_choices():
    models = sorted({(found.model, found.display_name) for found in catalog.OFFERS})
    return {
        "statuses": [("active", "Active")] + Job.STATUS_CHOICES,
        "models": models,
        "gateways": [(key, g.display_name) for key, g in catalog.GATEWAYS.items()],
        "modes": Job.MODE_CHOICES,
    }


@require_GET
@login_required
def index(request: HttpRequest):
    params = {name: request.GET.get(name, "") for name in FILTERS}
    rows, next_before = keyset_page(filtered(request.user, params), request.GET.get("before"), PAGE_SIZE)
    query = {k: v for k, v in params.items() if v}
    context = {
        "jobs": rows, "next_before": next_before, "before": request.GET.get("before"), "filters": params,
        "query": query, "filtering": bool(query), "active_ids": [job.pk for job in rows if job.is_active],
        **filter_choices(),
    }
    if request.htmx and not request.htmx.boosted:
        return render(request, TEMPLATE + "#job-page", context)
    return render(request, TEMPLATE, context)


@require_GET
@login_required
def card(request: HttpRequest, pk: int):
    job = get_owned_or_404(visible_jobs(request.user), request.user, pk=pk)
    if request.htmx:
        return render(request, TEMPLATE + "#job-card", {"job": job})
    return render(request, "jobs/detail.html", {"job": job})


@require_GET
@login_required
def poll(request: HttpRequest):
    """One request for every active card on the page. The page sends what it last saw of each
    (its token), and gets back only what changed, as out-of-band swaps: a running card's progress
    part, or the whole card; 204 when nothing changed. Once no card is active, it stops polling.
    Ids of other people's jobs are ignored, as if the cards were not there."""
    try:
        seen = job_cards.parse_seen(request.GET.getlist("seen"))
    except ValueError as problem:
        return HttpResponseBadRequest(str(problem), content_type="text/plain; charset=utf-8")
    found = list(polled_jobs(request.user, seen))
    cards = [job_cards.Card(job) for job in found]
    changes = [(card, card.change_since(seen[card.job.pk])) for card in cards]
    whole = whole_cards([card.job.pk for card, change in changes if change == "card"])
    progress = [card for card, change in changes if change == "progress"]
    still_active = [job.pk for job in found if job.is_active]
    if still_active and not whole and not progress:
        return HttpResponse(status=204)
    context = {"jobs": whole, "progress": progress, "active_ids": still_active}
    response = render(request, TEMPLATE + "#poll", context)
    if not still_active:
        response.status_code = HttpResponseStopPolling.status_code
    if len(still_active) < len(found):
        trigger_client_event(response, "spend-changed")
    return response


def polled_jobs(user, seen):
    """The user's jobs among the polled ones, with what their tokens and progress parts show
    (and how many images are stored so far): one query, whatever the number of cards.

    Written in SQL: every open jobs page asks every 2 s, and the ORM took longer to compile this
    query than the database took to run it (0.7 of 1.2 ms for 20 cards). Plain SQL that SQLite
    and PostgreSQL both read; the names come from the models."""
    if not seen:
        return []
    quote = connection.ops.quote_name

    def column(model, name):
        return quote(model._meta.get_field(name).column)

    columns = ", ".join(f"j.{column(Job, name)}" for name in ("id", *job_cards.PROGRESS_FIELDS))
    marks = ", ".join(["%s"] * len(seen))
    sql = (
        f"SELECT {columns}, (SELECT COUNT(*) FROM {quote(Image._meta.db_table)} i"
        f" WHERE i.{column(Image, 'job')} = j.{column(Job, 'id')}) AS stored_images"
        f" FROM {quote(Job._meta.db_table)} j"
        f" WHERE j.{column(Job, 'owner')} = %s AND j.{column(Job, 'id')} IN ({marks})"
        f" ORDER BY j.{column(Job, 'id')} DESC"
    )
    return Job.objects.raw(sql, [user.pk, *seen])


def whole_cards(ids):
    """The jobs to send as whole cards, with their money in the same query, then their images and
    share links: three queries for one card or twenty, none without."""
    if not ids:
        return []
    found = Job.objects.filter(pk__in=ids).prefetch_related("images", "shares", "team_shares").order_by("-id")
    return list(ledger.with_costs(found))


def card_response(request, job, errors=()):
    """The card again after an action (htmx), or back to the history."""
    if not request.htmx:
        return redirect(reverse("jobs") + f"#job-{job.pk}")
    job = ledger.with_costs(Job.objects.prefetch_related("images", "shares", "team_shares")).get(pk=job.pk)
    return render(request, TEMPLATE + "#job-card", {"job": job, "card_errors": errors})


@require_POST
@login_required
def cancel(request: HttpRequest, pk: int):
    job = get_own_or_404(Job.objects, request.user, pk=pk)
    jobs.cancel(job)
    response = card_response(request, job)
    return trigger_client_event(response, "spend-changed")


@require_POST
@login_required
def retry(request: HttpRequest, pk: int):
    job = get_own_or_404(Job.objects, request.user, pk=pk)
    try:
        new_job = jobs.retry(job)
    except jobs.JobRejected as rejected:
        errors = [m for messages in rejected.errors.values() for m in messages]
        if not request.htmx:
            return render(request, "jobs/detail.html", {"job": job, "card_errors": errors})
        return card_response(request, job, errors)
    if not request.htmx:
        return redirect(reverse("jobs") + f"#job-{new_job.pk}")
    response = render(request, TEMPLATE + "#new-job", {"job": new_job})
    return trigger_client_event(response, "spend-changed")


@require_POST
@login_required
def resolve(request: HttpRequest, pk: int):
    """Staff record what the gateway billed for a job whose submit went unanswered."""
    if not request.user.is_staff:
        raise Http404
    job = get_object_or_404(Job.objects, pk=pk)
    images = to_id(request.POST.get("images")) if request.POST.get("images") != "0" else 0
    try:
        jobs.resolve_unconfirmed(job, images, request.user, request.POST.get("note", ""))
    except ValueError as problem:
        return card_response(request, job, [str(problem)])
    return trigger_client_event(card_response(request, job), "spend-changed")


@require_POST
@login_required
def delete(request: HttpRequest, pk: int):
    """Hide the job from history; with `files`, also delete its images (never the ledger)."""
    job = get_own_or_404(Job.objects, request.user, pk=pk)
    if job.is_active:
        return card_response(request, job, ["Cancel the job before deleting it."])
    jobs.hide(job, delete_files=bool(request.POST.get("files")))
    if not request.htmx:
        return redirect("jobs")
    return HttpResponse("")


# --- download all as a zip ------------------------------------------------------------------


@require_GET
@login_required
def download_zip(request: HttpRequest, pk: int):
    """Every image of the job as one zip, streamed as it is written."""
    job = get_owned_or_404(Job.objects, request.user, pk=pk)
    images = list(job.images.select_related("job").prefetch_related("job__inputs").order_by("index"))
    return zip_download(images, f"image-studio-job-{job.pk}.zip")




@require_POST
@login_required
def team(request: HttpRequest, pk: int):
    """Share the job with exactly the ticked teams of its owner (none ticked: unshare)."""
    job = get_own_or_404(Job.objects, request.user, pk=pk)
    errors = []
    try:
        teams.set_teams(job, request.user, [to_id(value) for value in request.POST.getlist("team")])
    except teams.UnknownTeam as problem:
        errors = [str(problem)]
    if not request.htmx:
        return redirect(reverse("jobs") + f"#job-{job.pk}")
    context = {"job": job, "team_errors": errors, "team_saved": not errors}
    return render(request, TEMPLATE + "#team-panel", context, status=400 if errors else 200)
