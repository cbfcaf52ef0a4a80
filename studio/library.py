"""The gallery's domain: which images a filter finds (own or the team's), in what order, the
lightbox's neighbours, selections and the manifest a zip carries.

Order everywhere: newest job first, a job's images in their order (paging.image_page).
"""

import json
from urllib.parse import urlencode

from django import forms
from django.db.models import Exists, OuterRef, Q

from studio import paging, teams
from studio.gateways import catalog
from studio.models import Image, Job, Share, TeamShare

# What a search box may hold; longer is refused next to the field rather than cut.
QUERY_MAX = 200
# The most images one selection acts on (a page of the gallery is 60).
SELECTION_MAX = 500


def model_choices():
    return sorted({(found.model, found.display_name) for found in catalog.OFFERS})


class ImageFilters(forms.Form):
    """The gallery's and the team page's filters, as they stand in the URL. A value that is not
    one of the choices is an error shown next to its field, never quietly ignored."""

    q = forms.CharField(required=False, max_length=QUERY_MAX, label="Search prompts")
    model = forms.ChoiceField(required=False, label="Model")
    gateway = forms.ChoiceField(required=False, label="Gateway")
    mode = forms.ChoiceField(required=False, label="Mode")
    since = forms.DateField(required=False, label="From")
    until = forms.DateField(required=False, label="To")
    favourites = forms.BooleanField(required=False, label="Favourites")
    shared = forms.BooleanField(required=False, label="Shared")

    def __init__(self, data, *args, **kwargs):
        super().__init__(data, *args, **kwargs)
        self.fields["model"].choices = [("", "Any")] + model_choices()
        gateways = [(key, found.display_name) for key, found in catalog.GATEWAYS.items()]
        self.fields["gateway"].choices = [("", "Any")] + gateways
        self.fields["mode"].choices = [("", "Any")] + Job.MODE_CHOICES

    def clean(self):
        data = super().clean()
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data

    @property
    def values(self):
        """The valid filters that are set (what links to the next page carry on)."""
        if not self.is_valid():
            return {}
        return {name: value for name, value in self.cleaned_data.items()
                if value not in ("", None, False)}

    @property
    def query(self):
        """The set filters as a query string ("q=fox&shared=1"), for links that keep them."""
        shown = {}
        for name, value in self.values.items():
            shown[name] = "1" if value is True else str(value)  # a date's str() is its ISO form
        return urlencode(shown)


def filtered(images, values):
    """`images` narrowed by valid filter values (ImageFilters.values)."""
    if values.get("q"):
        images = images.filter(job__prompt__icontains=values["q"].strip())
    for name in ("model", "gateway", "mode"):
        if values.get(name):
            images = images.filter(**{f"job__{name}": values[name]})
    if values.get("since"):
        images = images.filter(job__day__gte=values["since"])
    if values.get("until"):
        images = images.filter(job__day__lte=values["until"])
    if values.get("favourites"):
        images = images.filter(favourite=True)
    if values.get("shared"):
        public = Share.objects.filter(job_id=OuterRef("job_id"), revoked=False)
        with_team = TeamShare.objects.filter(job_id=OuterRef("job_id"))
        images = images.filter(Q(Exists(public)) | Q(Exists(with_team)))
    return images


def page(images, filters, after, size):
    """One page of `images` in gallery order and the cursor onwards; nothing while a filter is
    in error (its message says why, next to the field)."""
    if not filters.is_valid():
        return [], None
    return paging.image_page(images, after, size)


def own_images(user, values):
    return filtered(Image.objects.filter(owner=user), values)


def team_images(user, values):
    """Images of jobs shared with a team the user is in (their own included)."""
    return filtered(Image.objects.filter(teams.visible_to(user)), values)


def neighbours(images, image):
    """The ids of the images before and after `image` in gallery order, among `images`."""
    before = (images.filter(job_id__gte=image.job_id).exclude(job_id=image.job_id, index__gte=image.index)
              .order_by("job_id", "-index").values_list("pk", flat=True).first())
    after = (images.filter(job_id__lte=image.job_id).exclude(job_id=image.job_id, index__lte=image.index)
             .order_by("-job_id", "index").values_list("pk", flat=True).first())
    return before, after


def selected(user, ids):
    """The user's own images among `ids`, in gallery order (others' ids are left out)."""
    wanted = [pk for pk in ids if pk][:SELECTION_MAX]
    found = Image.objects.filter(owner=user, pk__in=wanted)
    found = found.select_related("job").prefetch_related("job__inputs")
    return list(found.order_by("-job_id", "index"))


def entry_name(image):
    """An image's name inside a zip: unique, and sorted as the gallery shows them."""
    extension = image.file.name.rsplit(".", 1)[-1] if "." in image.file.name else "png"
    return f"job-{image.job_id}-{image.index + 1}.{extension}"


def manifest(images):
    """What made each image, as JSON text for manifest.json, so the images keep their story
    outside the portal. Cost is the job's price of one image, in CNY."""
    entries = []
    for image in images:
        job, request = image.job, image.job.request
        entries.append({
            "file": entry_name(image),
            "job": job.pk,
            "image": image.index + 1,
            "prompt": job.prompt,
            "negative_prompt": request.get("negative_prompt") or "",
            "revised_prompt": image.revised_prompt,
            "gateway": job.gateway,
            "model": job.model,
            "mode": job.mode,
            "size": {"width": image.width, "height": image.height},
            "seed": image.seed if image.seed is not None else request.get("seed"),
            "palette": request.get("palette") or [],
            "boxes": [list(found.boxes) for found in job.inputs.all()],
            "cost_cny": str(job.unit_price) if job.unit_price is not None else None,
            "created": image.created.isoformat(),
            "sha256": image.sha256,
        })
    return json.dumps({"images": entries}, indent=2, ensure_ascii=False)
