"""The create form: what a person typed, read from a POST (or a job to remix), turned into an
ImageRequest, and handed back to the template with every value and upload kept.

The form has no limits of its own: which modes, sizes, counts and options it offers comes from
the catalog's Offer and ModeLimits for the chosen gateway, model and mode.
"""

import json
from decimal import Decimal, InvalidOperation

from django import forms

from studio import ledger, media
from studio.access import to_id
from studio.gateways import catalog, usable_gateways
from studio.gateways.request import ImageRequest, validate
from studio.models import FormMemory, Upload

# What the form remembers besides gateway × model, mode and the on/off options.
REMEMBERED = ("n", "size_kind", "size_tier", "aspect", "width", "height", "share_team")
TRI_STATE = ("watermark", "thinking_mode", "safety_checker", "prompt_expansion")
TRI_LABELS = {
    "watermark": "Watermark",
    "thinking_mode": "Thinking mode",
    "safety_checker": "Safety checker",
    "prompt_expansion": "Prompt expansion",
}
OPTION_HELP = {
    "watermark": "Adds an “AI generated” mark in a corner.",
    "thinking_mode": "The model plans the picture before drawing it: better composition, a little slower.",
    "safety_checker": "The gateway screens the result for unsafe content.",
    "prompt_expansion": "The gateway rewrites a short prompt into a fuller one.",
}
# Documented defaults for the options the catalog does not carry a default for.
OPTION_DEFAULTS = {"thinking_mode": True}


class Choice:
    """One gateway/model pair for the picker."""

    def __init__(self, found, price):
        self.offer = found
        self.price = price
        self.value = f"{found.gateway}/{found.model}"


def offer_choices(prices):
    """[(gateway display name, [Choice, ...]), ...] for gateways usable now."""
    return [
        (
            catalog.GATEWAYS[key].display_name,
            [Choice(found, prices.get((found.gateway, found.model))) for found in catalog.offers_for(key)],
        )
        for key in usable_gateways()
    ]


def to_int(text):
    text = (text or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text  # kept as typed; validate() says what is wrong with it


def ratio_text(text):
    text = (text or "").strip().rstrip("%").strip()
    try:
        # quantize() refuses "Infinity", "sNaN" and numbers too long for two decimals.
        return f"{Decimal(text).quantize(Decimal('0.01'))}%"
    except InvalidOperation:
        return f"{text}%"


class Attached:
    """An upload on the form, with the boxes drawn on it and what is wrong with it now."""

    def __init__(self, upload, boxes=None, errors=None, warnings=None):
        self.upload = upload
        self.boxes = boxes or []
        self.errors = errors or []
        self.warnings = warnings or []

    @property
    def boxes_json(self):
        return json.dumps(self.boxes)


# --- parsing: a Django form ------------------------------------------------------------------


class ListField(forms.Field):
    """Every value of a repeated field (palette_hex, palette_ratio, upload), as typed."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value):
        return [str(item) for item in value or []]


class WholeNumberField(forms.CharField):
    """A whole number, or the text as typed when it is not one: validate() words the problem
    next to its field, so the form never refuses a value itself."""

    def to_python(self, value):
        return to_int(super().to_python(value))


class TriStateField(forms.CharField):
    """An option left to the gateway ("") or set on ("on") or off ("off"); anything else is kept
    as typed, and validate() refuses it rather than the form ignoring it."""


class CreateFields(forms.Form):
    """What the create form posts, parsed and cleaned. Nothing here judges a value against a
    gateway's rules: that is validate()'s, so every problem is worded in one place."""

    offer = forms.CharField(required=False)
    mode = forms.CharField(required=False)
    prompt = forms.CharField(required=False, strip=False)
    negative_prompt = forms.CharField(required=False, strip=False)
    n = WholeNumberField(required=False)
    size_kind = forms.CharField(required=False)
    size_tier = forms.CharField(required=False, strip=False)
    aspect = forms.CharField(required=False, strip=False)
    width = WholeNumberField(required=False)
    height = WholeNumberField(required=False)
    seed = WholeNumberField(required=False)
    seed_lock = forms.BooleanField(required=False)
    watermark = TriStateField(required=False)
    thinking_mode = TriStateField(required=False)
    safety_checker = TriStateField(required=False)
    prompt_expansion = TriStateField(required=False)
    palette_hex = ListField(required=False)
    palette_ratio = ListField(required=False)
    upload = ListField(required=False)
    share_team = forms.BooleanField(required=False)

    def clean(self):
        data = super().clean()
        data["gateway"], _, data["model"] = (data.get("offer") or "").partition("/")
        data["palette"] = [
            {"hex": colour.upper(), "ratio": ratio_text(ratio)}
            for colour, ratio in zip(data["palette_hex"], data["palette_ratio"], strict=False)
        ]
        data["upload_ids"] = [pk for pk in map(to_id, data["upload"]) if pk]
        # The drawing widget posts one hidden boxes_<upload id> field per attached image.
        data["boxes"] = {pk: parse_boxes(self.data.get(f"boxes_{pk}")) for pk in data["upload_ids"]}
        return data


# --- presenting: what the create page shows ----------------------------------------------------


class CreateForm:
    """The create form's values as the page shows them; `errors` maps field → messages
    (validate()'s field names). Built from a POST (CreateFields), a job (remix) or nothing."""

    def __init__(self, user):
        self.user = user
        self.prices = ledger.price_table()  # one query for every offer on the page
        self.groups = offer_choices(self.prices)
        # Start on the first model with a price: one without cannot be used until an admin sets it.
        choices = [choice for _, group in self.groups for choice in group]
        priced = [choice for choice in choices if choice.price is not None]
        first = (priced or choices)[0].offer if choices else None
        self.gateway = first.gateway if first else ""
        self.model = first.model if first else ""
        self.mode = catalog.TEXT_TO_IMAGE
        self.prompt = ""
        self.negative_prompt = ""
        self.n = 1
        self.size_kind = "tier"
        self.size_tier = ""
        self.aspect = ""
        self.width = None
        self.height = None
        self.seed = None
        self.seed_lock = False
        self.options = dict.fromkeys(TRI_STATE, "")
        self.palette = []
        self.attached = []
        self.share_team = False
        self.errors = {}
        self.asked = {}
        self.fit_to_offer()

    # --- reading ---------------------------------------------------------------------------

    @classmethod
    def from_post(cls, user, data):
        fields = CreateFields(data)
        fields.is_valid()  # never False: every field is optional and kept as typed
        values = fields.cleaned_data
        form = cls(user)
        if values["gateway"]:
            form.gateway, form.model = values["gateway"], values["model"]
        form.mode = values["mode"] or form.mode
        form.prompt = values["prompt"]
        form.negative_prompt = values["negative_prompt"]
        form.n = 1 if values["n"] is None else values["n"]  # 0 or -3 stay, for validate() to refuse
        form.size_kind = "exact" if values["size_kind"] == "exact" else "tier"
        form.size_tier = values["size_tier"]
        form.aspect = values["aspect"]
        form.width, form.height, form.seed = values["width"], values["height"], values["seed"]
        form.seed_lock = values["seed_lock"]
        for name in TRI_STATE:
            form.options[name] = values[name]
        form.palette = values["palette"]
        form.share_team = values["share_team"]
        form.attach_ids(values["upload_ids"], values["boxes"])
        asked = {"gateway": form.gateway, "model": form.model, "mode": form.mode}
        form.fit_to_offer()
        # What was asked for but is not on offer is sent to validate() as asked, so it is refused
        # next to its field rather than silently swapped for something else (that may cost more).
        form.asked = {key: value for key, value in asked.items() if value != getattr(form, key)}
        return form

    @classmethod
    def from_job(cls, user, job):
        """The form as it was for `job` (remix)."""
        form = cls(user)
        earlier = ImageRequest.from_dict(job.request)
        form.gateway, form.model, form.mode = earlier.gateway, earlier.model, earlier.mode
        form.prompt, form.negative_prompt = earlier.prompt, earlier.negative_prompt or ""
        form.n = earlier.n
        form.size_tier, form.aspect = earlier.size_tier or "", earlier.aspect or ""
        form.width, form.height = earlier.width, earlier.height
        form.size_kind = "exact" if earlier.width else "tier"
        # A seed the portal picked is not the person's choice: a remix picks a new one.
        form.seed = None if job.request.get("seed_picked") else earlier.seed
        form.seed_lock = form.seed is not None
        for name in TRI_STATE:
            value = getattr(earlier, name)
            form.options[name] = "" if value is None else ("on" if value else "off")
        form.palette = list(earlier.palette or [])
        if job.owner_id == user.pk:
            # Someone else's inputs are never attached: a teammate's remix brings copies of them.
            form.attached = [Attached(i.upload, i.boxes) for i in job.inputs.select_related("upload")]
        form.fit_to_offer()
        return form

    @classmethod
    def remembered(cls, user):
        """The form as the person last left it: gateway × model, mode and options, never the
        prompt, the seed or the images (FormMemory, written by remember())."""
        form = cls(user)
        found = FormMemory.objects.filter(user=user).first()
        values = found.values if found else {}
        if catalog.offer(values.get("gateway", ""), values.get("model", "")):
            form.gateway, form.model = values["gateway"], values["model"]
        form.mode = values.get("mode") if values.get("mode") in catalog.MODES else form.mode
        for name in REMEMBERED:
            if name in values:
                setattr(form, name, values[name])
        for name in TRI_STATE:
            if values.get("options", {}).get(name) in ("", "on", "off"):
                form.options[name] = values["options"][name]
        form.fit_to_offer()
        return form

    def memory(self):
        values = {name: getattr(self, name) for name in REMEMBERED}
        return {"gateway": self.gateway, "model": self.model, "mode": self.mode,
                "options": dict(self.options), **values}

    def attach_ids(self, ids, boxes=None):
        """Attach the user's own uploads by id (others' ids are ignored), with their boxes."""
        wanted = [pk for pk in map(to_id, ids) if pk]
        found = {u.pk: u for u in Upload.objects.filter(owner=self.user, pk__in=wanted)}
        for pk in wanted:
            if pk in found and all(a.upload.pk != pk for a in self.attached):
                self.attached.append(Attached(found[pk], (boxes or {}).get(pk, [])))

    def fit_to_offer(self):
        """Keep the choice inside what the catalog offers (e.g. a mode the new model lacks)."""
        found = self.offer
        if found is None and self.groups:
            first = self.groups[0][1][0].offer
            self.gateway, self.model = first.gateway, first.model
            found = first
        if found and found.limits(self.mode) is None:
            self.mode = found.mode_keys[0]

    # --- what the template needs -------------------------------------------------------------

    @property
    def offer(self):
        return catalog.offer(self.gateway, self.model)

    @property
    def limits(self):
        found = self.offer
        return found.limits(self.mode) if found else None

    @property
    def offer_value(self):
        return f"{self.gateway}/{self.model}"

    @property
    def price(self):
        return self.prices.get((self.gateway, self.model)) if self.offer else None

    def supports(self, option):
        return bool(self.limits) and option in self.limits.options

    @property
    def modes(self):
        found = self.offer
        return [(limits.mode, catalog.MODES[limits.mode].title) for limits in found.modes] if found else []

    @property
    def supports_negative(self):
        return self.supports(catalog.NEGATIVE_PROMPT)

    @property
    def supports_seed(self):
        return self.supports(catalog.SEED)

    @property
    def supports_palette(self):
        return self.supports(catalog.PALETTE)

    @property
    def mode_hint(self):
        return catalog.MODES[self.mode].hint if self.mode in catalog.MODES else ""

    @property
    def other_errors(self):
        return [m for field, messages in self.errors.items() if field not in SHOWN_FIELDS for m in messages]

    @property
    def is_storyboard(self):
        return self.mode == catalog.STORYBOARD

    @property
    def is_region_edit(self):
        return self.mode == catalog.REGION_EDIT

    @property
    def count_problem(self):
        """Why the number of images can't be made, in validate()'s words ("" when it can)."""
        inputs = [media.input_meta(upload) for upload in self.uploads]
        return " ".join(validate(self.image_request(), inputs).get("n", []))

    @property
    def rules(self):
        """The catalog's fixed limits the page states or the JS enforces, never typed again."""
        return {
            "seed_max": catalog.SEED_MAX,
            "boxes_max": catalog.BOXES_PER_IMAGE,
            "palette_min": catalog.PALETTE_MIN_COLOURS,
            "palette_max": catalog.PALETTE_MAX_COLOURS,
            "formats": media.FORMAT_NAMES,
            "megabytes": catalog.INPUT_MAX_BYTES // (1024 * 1024),
            "min_side": catalog.INPUT_MIN_SIDE,
            "max_side": catalog.INPUT_MAX_SIDE,
        }

    @property
    def takes_images(self):
        return bool(self.limits) and self.limits.max_images > 0

    @property
    def tri_states(self):
        """[(name, label, help, value, default label)] for the options this mode supports."""
        rows = []
        for name in TRI_STATE:
            if not self.supports(name):
                continue
            default = self.offer.watermark_default if name == "watermark" else OPTION_DEFAULTS.get(name)
            default_label = "gateway's" if default is None else ("on" if default else "off")
            rows.append((name, TRI_LABELS[name], OPTION_HELP[name], self.options[name], default_label))
        return rows

    @property
    def pixel_size(self):
        try:
            return self.image_request().pixel_size()
        except (KeyError, ValueError, TypeError):
            return None

    @property
    def prompt_max(self):
        return self.offer.prompt_max if self.offer else 0

    # --- writing ----------------------------------------------------------------------------

    def image_request(self):
        exact = self.size_kind == "exact" and self.limits is not None and self.limits.exact_size
        boxes = None
        if self.supports(catalog.BOXES):
            boxes = [a.boxes for a in self.attached]
        return ImageRequest(
            gateway=self.asked.get("gateway", self.gateway),
            model=self.asked.get("model", self.model),
            mode=self.asked.get("mode", self.mode),
            prompt=self.prompt,
            negative_prompt=self.negative_prompt if self.supports(catalog.NEGATIVE_PROMPT) else "",
            n=self.n,
            size_tier=None if exact else (self.size_tier or None),
            aspect=None if exact or not self.size_tier else (self.aspect or None),
            width=self.width if exact else None,
            height=self.height if exact else None,
            seed=self.seed if self.supports(catalog.SEED) else None,
            palette=(self.palette or None) if self.supports(catalog.PALETTE) else None,
            boxes=boxes,
            **{name: tri_value(self.options[name]) if self.supports(name) else None for name in TRI_STATE},
        )

    @property
    def uploads(self):
        return [a.upload for a in self.attached]

    @property
    def boxes(self):
        return [a.boxes for a in self.attached]

    def take_files(self, files):
        """Store files sent with the form itself (no JavaScript) and attach them; returns the
        problems of those that could not be used, one line per file."""
        problems = []
        for file in files:
            try:
                upload, notes = media.take_upload(self.user, file, self.offer)
            except media.UploadRefused as refused:
                problems.append(f"{file.name}: {' '.join(refused.messages)}")
                continue
            self.attached.append(Attached(upload, warnings=notes))
        return problems

    def balance_palette(self):
        """Shares rounded to two decimals that add up to exactly 100.00%, in proportion to what
        was typed (equal shares when nothing usable was)."""
        weights = []
        for entry in self.palette:
            try:
                weights.append(max(Decimal(0), Decimal(entry["ratio"].rstrip("%"))))
            except (InvalidOperation, ValueError):
                weights.append(Decimal(0))
        if not weights:
            return
        if not all(weight.is_finite() for weight in weights) or sum(weights) <= 0:
            weights = [Decimal(1)] * len(weights)
        shares = media.percentages(weights)
        self.palette = [{"hex": entry["hex"], "ratio": f"{share}%"} for entry, share in zip(
            self.palette, shares, strict=True)]

    def check_uploads(self):
        """Re-check every attached upload against the gateway chosen now; marks each with its
        errors and returns the line for the form's banner when any has one."""
        for item in self.attached:
            item.errors, item.warnings = media.check_upload(item.upload, self.offer)
        if any(item.errors for item in self.attached):
            return ["Remove or replace the images marked below."]
        return []


# Fields the form shows errors next to; anything else goes in the banner at the top.
SHOWN_FIELDS = {
    "gateway", "model", "mode", "prompt", "negative_prompt", "n", "size", "seed", "palette", "boxes",
    "images", *TRI_STATE,
}

def remember(user, form):
    """Keep the form's choices for the person's next visit (CreateForm.remembered)."""
    values = form.memory()
    # Written only when they changed: someone sending job after job with the same choices
    # should not queue a write behind everyone else's (SQLite has one writer at a time).
    if FormMemory.objects.filter(user=user).values_list("values", flat=True).first() == values:
        return
    FormMemory.objects.update_or_create(user=user, defaults={"values": values})


def tri_value(text):
    """True, False, None (left to the gateway), or the text as typed for validate() to refuse."""
    return {"on": True, "off": False, "": None}.get(text, text)


def parse_boxes(text):
    """Boxes from the drawing widget's hidden input: [[x1, y1, x2, y2], ...] in image pixels."""
    try:
        boxes = json.loads(text or "[]")
    except ValueError:
        return []
    if not isinstance(boxes, list):
        return []
    clean = []
    for box in boxes:
        if isinstance(box, list) and len(box) == 4:
            try:
                clean.append([round(float(v)) for v in box])
            except (TypeError, ValueError, OverflowError):  # 1e999 parses as infinity
                continue
    return clean
