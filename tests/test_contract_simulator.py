"""The golden wire bodies again, this time sent to the built-in simulator over real HTTP.

test_adapters_contract.py pins each gateway × model × mode body against a recording server;
here the same requests, with real input images, must be accepted by the simulator (which
checks them as the real gateway would) and arrive exactly as the golden file says, input
images aside (their bytes or URLs differ by construction).
"""

import io
import json

import pytest
from django.core.files.base import ContentFile
from PIL import Image as PILImage

from studio import gateways, media
from studio import simulator as sim
from studio.gateways import catalog
from studio.gateways.request import InputImage
from studio.models import Upload
from tests.test_adapters_contract import GOLDEN, extra_cases, full_cases

pytestmark = pytest.mark.django_db(transaction=True)

IMAGE_FIELDS = ("image", "image_urls")


def real_inputs(owner, count, offer):
    """JPEGs the size the golden cases declare (1600×1200), stored as uploads so foxapi,
    which only takes URLs, can fetch them from the portal; ready for the offer's wire as
    media.input_images makes them."""
    inputs = []
    for number in range(1, count + 1):
        buffer = io.BytesIO()
        PILImage.new("RGB", (1600, 1200), (40 * number, 120, 200)).save(buffer, "JPEG", quality=60)
        data = buffer.getvalue()
        upload = Upload(
            owner=owner,
            original_name=f"{number}.jpg",
            mime="image/jpeg",
            width=1600,
            height=1200,
            bytes=len(data),
            sha256="0" * 64,
        )
        upload.file.save(f"{number}.jpg", ContentFile(data), save=False)
        upload.save()
        image = InputImage(
            data=data, mime="image/jpeg", width=1600, height=1200, url=media.public_upload_url(upload)
        )
        inputs.append(media.prepare_input(image, offer))
    return inputs


def without_image_payloads(body):
    """Input images replaced by their position: what must match is where they go."""
    body = json.loads(json.dumps(body))
    for field in IMAGE_FIELDS:
        if isinstance(body.get(field), list):
            body[field] = [f"<image {n}>" for n in range(1, len(body[field]) + 1)]
        elif isinstance(body.get(field), str):
            body[field] = "<image 1>"
    return body


@pytest.mark.parametrize(("request_", "inputs", "name"), [*full_cases(), *extra_cases()])
def test_the_simulator_accepts_and_receives_the_golden_body(
    simulator, settings, owner, request_, inputs, name
):
    settings.STUDIO_SIMULATOR_LATENCY = 0.05
    offer = catalog.offer(request_.gateway, request_.model)
    state = gateways.adapter_for(request_.gateway).submit(request_, real_inputs(owner, len(inputs), offer))
    assert state.status != "failed", state.error
    received = sim.last_request(request_.gateway)
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    assert without_image_payloads(received) == without_image_payloads(golden)
    assert sim.counters(request_.gateway)["submits"] == 1
