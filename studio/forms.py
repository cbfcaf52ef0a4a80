"""The create form: what a person typed, read from a POST (or a job to remix), turned into an
ImageRequest, and handed back to the template with every value and upload kept.

The form has no limits of its own: which modes, sizes, counts and options it offers comes from
the catalog's Offer and ModeLimits for the chosen gateway, model and mode.
"""

import json
from decimal import Decimal, InvalidOperation

from studio import ledger, uploads
from studio.access import to_id
from studio.gateways import catalog, usable_gateways
from studio.gateways.request import ImageRequest
from studio.models import Upload

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

    @property
    def label(self):
        price = f"{ledger.yuan(self.price)} an image" if self.price is not None else "price not set"
        return f"{self.offer.display_name} · {price}"


def offer_choices():
    """[(gateway display name, [Choice, ...]), ...] for gateways usable now."""
    groups = []
    for key in usable_gateways():
        offers = catalog.offers_for(key)
        choices = [Choice(found, ledger.unit_price(found.gateway, found.model)) for found in offers]
        groups.append((catalog.GATEWAYS[key].display_name, choices))
    return groups


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


class CreateForm:
    """The create form's values; `errors` maps field → messages (validate()'s field names)."""

    def __init__(self, user):
        self.user = user
        self.groups = offer_choices()
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
        self.errors = {}
        self.fit_to_offer()

    # --- reading ---------------------------------------------------------------------------

    @classmethod
    def from_post(cls, user, data):
        form = cls(user)
        gateway, _, model = (data.get("offer") or "").partition("/")
        if gateway:
            form.gateway, form.model = gateway, model
        form.mode = data.get("mode") or form.mode
        form.prompt = data.get("prompt", "")
        form.negative_prompt = data.get("negative_prompt", "")
        form.n = to_int(data.get("n")) or 1
        form.size_kind = "exact" if data.get("size_kind") == "exact" else "tier"
        form.size_tier = data.get("size_tier", "")
        form.aspect = data.get("aspect", "")
        form.width = to_int(data.get("width"))
        form.height = to_int(data.get("height"))
        form.seed = to_int(data.get("seed"))
        form.seed_lock = bool(data.get("seed_lock"))
        for name in TRI_STATE:
            form.options[name] = data.get(name, "") if data.get(name, "") in ("on", "off") else ""
        colours, ratios = data.getlist("palette_hex"), data.getlist("palette_ratio")
        form.palette = [{"hex": colour.upper(), "ratio": ratio_text(ratio)}
                        for colour, ratio in zip(colours, ratios, strict=False)]
        form.attach_ids(data.getlist("upload"), data)
        form.fit_to_offer()
        return form

    @classmethod
    def from_job(cls, user, job):
        """The form as it was for `job` (remix)."""
        form = cls(user)
        request = ImageRequest.from_dict(job.request)
        form.gateway, form.model, form.mode = request.gateway, request.model, request.mode
        form.prompt, form.negative_prompt = request.prompt, request.negative_prompt or ""
        form.n = request.n
        form.size_tier, form.aspect = request.size_tier or "", request.aspect or ""
        form.width, form.height = request.width, request.height
        form.size_kind = "exact" if request.width else "tier"
        form.seed = request.seed
        form.seed_lock = request.seed is not None
        for name in TRI_STATE:
            value = getattr(request, name)
            form.options[name] = "" if value is None else ("on" if value else "off")
        form.palette = list(request.palette or [])
        form.attached = [Attached(i.upload, i.boxes) for i in job.inputs.select_related("upload")]
        form.fit_to_offer()
        return form

    def attach_ids(self, ids, data=None):
        wanted = [pk for pk in map(to_id, ids) if pk]
        found = {u.pk: u for u in Upload.objects.filter(owner=self.user, pk__in=wanted)}
        for pk in wanted:
            if pk in found and all(a.upload.pk != pk for a in self.attached):
                boxes = parse_boxes(data.get(f"boxes_{pk}") if data else "")
                self.attached.append(Attached(found[pk], boxes))

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
        return ledger.unit_price(self.gateway, self.model) if self.offer else None

    def supports(self, option):
        return bool(self.limits) and option in self.limits.options

    @property
    def modes(self):
        found = self.offer
        return [(limits.mode, dict(MODE_TABS)[limits.mode]) for limits in found.modes] if found else []

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
        return MODE_HINTS.get(self.mode, "")

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
    def seed_max(self):
        return catalog.SEED_MAX

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
            return self.to_request().pixel_size()
        except (KeyError, ValueError, TypeError):
            return None

    @property
    def prompt_max(self):
        return self.offer.prompt_max if self.offer else 0

    # --- writing ----------------------------------------------------------------------------

    def to_request(self):
        exact = self.size_kind == "exact" and self.limits is not None and self.limits.exact_size
        boxes = None
        if self.supports(catalog.BOXES):
            boxes = [a.boxes for a in self.attached]
        return ImageRequest(
            gateway=self.gateway,
            model=self.model,
            mode=self.mode,
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

    def check_uploads(self):
        """Re-check every attached upload against the gateway chosen now; errors by file."""
        for item in self.attached:
            item.errors, item.warnings = uploads.check_upload(item.upload, self.offer)
        return any(item.errors for item in self.attached)


MODE_HINTS = {
    catalog.TEXT_TO_IMAGE: "Describe the picture you want.",
    catalog.EDIT: "Add one image and describe the change you want.",
    catalog.REFERENCE: "Add two or more images and refer to them as “image 1”, “image 2” in the prompt.",
    catalog.REGION_EDIT: "Add images, then drag on them to box the areas to change (up to two boxes each).",
    catalog.STORYBOARD: "A coherent series of images; the model decides how many, up to the number you set.",
}
# Fields the form shows errors next to; anything else goes in the banner at the top.
SHOWN_FIELDS = {
    "gateway", "model", "mode", "prompt", "negative_prompt", "n", "size", "seed", "palette", "boxes",
    "images", *TRI_STATE,
}

MODE_TABS = [
    (catalog.TEXT_TO_IMAGE, "Text to image"),
    (catalog.EDIT, "Edit an image"),
    (catalog.REFERENCE, "Combine references"),
    (catalog.REGION_EDIT, "Region edit"),
    (catalog.STORYBOARD, "Storyboard"),
]


def tri_value(text):
    return {"on": True, "off": False}.get(text)


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
