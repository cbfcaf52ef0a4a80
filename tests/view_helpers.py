"""Small factories for the view tests: real image bytes, uploads, jobs with stored images."""

import io
from decimal import Decimal

from PIL import Image as PILImage

from studio import media
from studio.gateways.request import ImageRequest
from studio.models import Job, LedgerEntry

HX = {"HTTP_HX_REQUEST": "true"}


def image_bytes(width=512, height=512, fmt="PNG", colour=(200, 60, 40), mode="RGB"):
    """A real image; with mode RGBA and a colour with alpha < 255 it is transparent."""
    image = PILImage.new(mode, (width, height), colour)
    if mode == "RGB" and width >= 4:
        # Four quadrants so palettes have more than one colour.
        for box, fill in (((0, 0, width // 2, height // 2), (30, 90, 200)),
                          ((width // 2, 0, width, height // 2), (240, 220, 60)),
                          ((0, height // 2, width // 2, height), (20, 160, 90))):
            image.paste(fill, box)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def make_upload(user, width=512, height=512, name="photo.png", fmt="PNG", **kwargs):
    data = image_bytes(width, height, fmt, **kwargs)
    facts, problem = media.read_facts(data)
    assert facts is not None, problem
    return media.store(user, data, name, facts)


def make_job(user, status=Job.SUCCEEDED, images=2, gateway="apimart", model="wan2.7-image",
             mode="text-to-image", prompt="A lighthouse at dusk", n=None, **request_fields):
    """A job as the pipeline leaves it, with `images` real stored images (original + thumbnail)."""
    n = n or max(images, 1)
    request = ImageRequest(gateway=gateway, model=model, mode=mode, prompt=prompt, n=n, **request_fields)
    job = Job.objects.create(
        owner=user, gateway=gateway, model=model, mode=mode, prompt=prompt, request=request.to_dict(),
        n_requested=n, status=status, unit_price=Decimal("0.20"), hold_amount=Decimal("0.20") * n,
    )
    for index in range(images):
        data = image_bytes(640, 480, colour=(index * 40 % 255, 80, 120))
        media.store_result(job, {"index": index, "revised_prompt": f"revised {index}"}, data)
    return job


def hold(job):
    return LedgerEntry.objects.create(
        user=job.owner, job=job, kind=LedgerEntry.HOLD, amount=job.hold_amount, images=job.n_requested
    )
