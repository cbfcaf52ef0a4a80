"""The create page: the form, its htmx fragments (options, cost, uploads, palette) and submit."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget, trigger_client_event

from studio import jobs, ledger, media, teams
from studio.access import get_owned_or_404, to_id
from studio.forms import Attached, CreateForm, parse_boxes, remember
from studio.gateways import catalog
from studio.models import Image, Job, Upload

TEMPLATE = "create/index.html"
RECENT_JOBS = 6
RECENT_PICKS = 24


def page_context(request, form):
    recent = list(Job.objects.filter(owner=request.user, hidden=False)
                  .prefetch_related("images", "shares", "team_shares").order_by("-id")[:RECENT_JOBS])
    return {**fragment_context(request, form), "jobs": recent,
            "active_ids": [job.pk for job in recent if job.is_active]}


def fragment_context(request, form, **extra):
    return {"form": form, "cost": cost_line(request.user, form), **extra}


def cost_line(user, form):
    """What the job would cost and what would be left: for the live line above the button.
    Never a negative amount: an impossible count shows its problem instead, and what is left
    stops at ¥0.00 with how far over the budget already is."""
    quote = ledger.quote(user, form.gateway, form.model, form.n) if form.offer else None
    left, over_by = ledger.left_and_over(quote.left if quote else ledger.remaining(user))
    line = {
        "price": quote.price if quote else None,
        "n": None,
        "n_problem": "",
        "total": None,
        "over": False,
        "left": left,
        "over_by": over_by,
    }
    if quote is None or quote.price is None:
        return line
    if quote.total is None:
        line["n_problem"] = form.count_problem
        return line
    line.update(n=form.n, total=quote.total, over=not quote.fits)
    return line


@login_required
def index(request: HttpRequest):
    if request.method == "POST":
        return submit(request)
    form = CreateForm.remembered(request.user)
    remix = request.GET.get("remix")
    if to_id(remix):
        form = CreateForm.from_job(request.user, remix_source(request.user, to_id(remix)))
    seed = request.GET.get("seed", "")
    if seed.isascii() and seed.isdigit() and int(seed) <= catalog.SEED_MAX:
        form.seed, form.seed_lock = int(seed), True  # "Use this seed" on an image
    ids = request.GET.getlist("upload")
    form.attach_ids(ids, {to_id(pk): parse_boxes(request.GET.get(f"boxes_{pk}")) for pk in ids})
    if remix or request.GET.getlist("upload"):
        pick_mode_for_images(form)
        form.check_uploads()
    return render(request, TEMPLATE, page_context(request, form))


def remix_source(user, pk):
    """The job to remix: the user's own (staff: anyone's), or one shared with their team, whose
    inputs arrive as the user's own copies (views.team.remix)."""
    mine = Job.objects.all() if user.is_staff else Job.objects.filter(owner=user)
    return mine.filter(pk=pk).first() or teams.get_team_job_or_404(user, pk=pk)


def pick_mode_for_images(form):
    """Arriving with images (use as reference) opens a mode that takes them."""
    if form.takes_images or not form.attached or not form.offer:
        return
    wanted = "edit" if len(form.attached) == 1 else "reference"
    for mode in (wanted, "reference", "edit", "region-edit"):
        if form.offer.limits(mode):
            form.mode = mode
            return


def submit(request):
    form = CreateForm.from_post(request.user, request.POST)
    problems = form.take_files(request.FILES.getlist("files")) + form.check_uploads()
    try:
        job = jobs.create_job(
            request.user, form.image_request(), form.uploads, form.boxes, upload_problems=problems
        )
    except jobs.JobRejected as rejected:
        form.errors = rejected.errors
        if request.htmx:
            response = render(request, TEMPLATE + "#create-form", fragment_context(request, form))
            return reswap(retarget(response, "#create-form"), "outerHTML")
        return render(request, TEMPLATE, page_context(request, form))
    remember(request.user, form)
    if form.share_team:
        teams.share_with_all_teams([job], request.user)
    if not request.htmx:
        return redirect("jobs")
    response = render(request, "jobs/index.html#new-job", {"job": job})
    trigger_client_event(response, "spend-changed")
    return trigger_client_event(response, "job-created", {"id": job.pk})


@require_POST
@login_required
def options(request: HttpRequest):
    """The options panel for the chosen gateway, model and mode, keeping what was typed."""
    form = CreateForm.from_post(request.user, request.POST)
    form.check_uploads()
    remember(request.user, form)
    return render(request, TEMPLATE + "#options-response", fragment_context(request, form))


@require_POST
@login_required
def cost(request: HttpRequest):
    form = CreateForm.from_post(request.user, request.POST)
    return render(request, TEMPLATE + "#cost-line", fragment_context(request, form, oob_size=True))


@require_POST
@login_required
def upload(request: HttpRequest):
    """One file from the drop zone, the picker or the clipboard: stored at once, answered with
    its chip (or the reasons it can't be used)."""
    form = CreateForm.from_post(request.user, request.POST)
    file = request.FILES.get("file")
    if file is None:
        return render(request, TEMPLATE + "#upload-problem",
                      {"name": "", "errors": ["Choose an image file to upload."]}, status=400)
    try:
        upload, notes = media.take_upload(request.user, file, form.offer)
    except media.UploadRefused as refused:
        return render(request, TEMPLATE + "#upload-problem", {"name": file.name, "errors": refused.messages})
    item = Attached(upload, warnings=notes)
    return render(request, TEMPLATE + "#chip", {"item": item, "form": form})


@require_GET
@login_required
def upload_chip(request: HttpRequest, pk: int):
    """An earlier upload (or one just copied from the gallery) as a chip on the form."""
    found = get_owned_or_404(Upload.objects, request.user, pk=pk)
    form = CreateForm.from_post(request.user, request.GET)
    errors, notes = media.check_upload(found, form.offer)
    item = Attached(found, errors=errors, warnings=notes)
    if not request.htmx:
        return redirect(f"{reverse('create')}?upload={found.pk}")
    return render(request, TEMPLATE + "#chip", {"item": item, "form": form})


@require_GET
@login_required
def recent(request: HttpRequest):
    """Earlier uploads and gallery images to reuse as references."""
    context = {
        "recent_uploads": Upload.objects.filter(owner=request.user).order_by("-id")[:RECENT_PICKS],
        "recent_images": Image.objects.filter(owner=request.user).order_by("-id")[:RECENT_PICKS],
    }
    return render(request, TEMPLATE + "#recent", context)


@require_POST
@login_required
def palette(request: HttpRequest):
    """The palette editor: balanced to 100% (`balance`), or taken from an image (a new file or
    an attached upload)."""
    form = CreateForm.from_post(request.user, request.POST)
    error = ""
    file = request.FILES.get("palette_image")
    try:
        if request.POST.get("balance"):
            form.balance_palette()
        elif file is not None:
            form.palette = media.palette_from(media.read_file(file))
        else:
            found = get_owned_or_404(Upload.objects, request.user, pk=request.POST.get("from_upload") or 0)
            form.palette = media.palette_from(media.stored_bytes(found.file))
    except ValueError as exc:
        error = str(exc)
    return render(request, TEMPLATE + "#palette", {"form": form, "palette_error": error})
