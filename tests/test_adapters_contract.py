"""The adapters' wire bodies, captured over real loopback HTTP and compared with golden JSON.

Each gateway × model × mode sends one request that sets every option the catalog allows there,
so the golden file shows the whole mapping; a few extra cases show what a bare request sends.
Golden files live in tests/golden/. After a deliberate change, regenerate them with
STUDIO_UPDATE_GOLDEN=1 and read the diff against the gateway's documentation before committing.
"""

import json
import os
from pathlib import Path

import pytest

from studio import gateways, media
from studio.gateways import catalog
from studio.gateways.http import USER_AGENT
from studio.gateways.request import ImageRequest, InputImage, validate
from tests.fake_upstream import FakeUpstream

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("STUDIO_UPDATE_GOLDEN") == "1"

PALETTE = [
    {"hex": "#C2D1E6", "ratio": "23.51%"},
    {"hex": "#CDD8E9", "ratio": "20.13%"},
    {"hex": "#B5C8DB", "ratio": "15.88%"},
    {"hex": "#C0B5B4", "ratio": "13.27%"},
    {"hex": "#DAE0EC", "ratio": "10.11%"},
    {"hex": "#636574", "ratio": "8.93%"},
    {"hex": "#CACAD2", "ratio": "5.55%"},
    {"hex": "#CBD4E4", "ratio": "2.62%"},
]

SUBMIT_REPLIES = {
    catalog.OPENAI_SYNC: {"created": 1773803391, "data": [{"url": "https://cdn.example/a.png"}]},
    catalog.TASK_ASYNC: {
        "code": "success",
        "message": "",
        "data": [{"task_id": "task_01HX", "status": "processing"}],
    },
    catalog.FOX_ASYNC: {
        "created": 1757165031,
        "id": "task-unified-1757165031-uyujaw3d",
        "model": "wan-2.7-image",
        "object": "image.generation.task",
        "progress": 0,
        "status": "pending",
        "task_info": {"can_cancel": True, "estimated_time": 45},
        "type": "image",
    },
}


def input_image(number, offer):
    # JPEG bytes go on the wire untouched, so a short fake keeps the golden files readable.
    image = InputImage(
        data=f"fake-jpeg-{number}".encode(),
        mime="image/jpeg",
        width=1600,
        height=1200,
        url=f"https://portal.example/u/{number}.jpg",
    )
    return media.prepare_input(image, offer)  # as media.input_images hands it to the adapter


def full_request(found, limits):
    """A valid request for this offer and mode that sets everything the mode allows."""
    mode = limits.mode
    image_count = {catalog.REFERENCE: 2, catalog.REGION_EDIT: 2}.get(mode, limits.min_images)
    if mode == catalog.STORYBOARD and limits.max_images:
        image_count = 1
    options = limits.options
    request = ImageRequest(
        gateway=found.gateway,
        model=found.model,
        mode=mode,
        prompt="A flower shop with exquisite windows and a beautiful wooden door",
        n=4 if mode == catalog.STORYBOARD else min(2, limits.n_max),
        size_tier=limits.tiers[-1],
        aspect="16:9" if limits.aspects else None,
        seed=1073741823 if catalog.SEED in options else None,
        watermark=True if catalog.WATERMARK in options else None,
        thinking_mode=True if catalog.THINKING_MODE in options else None,
        negative_prompt="blurry, low quality" if catalog.NEGATIVE_PROMPT in options else "",
        palette=PALETTE if catalog.PALETTE in options else None,
        boxes=[[], [[989, 515, 1138, 681]]] if catalog.BOXES in options else None,
        safety_checker=False if catalog.SAFETY_CHECKER in options else None,
        prompt_expansion=True if catalog.PROMPT_EXPANSION in options else None,
        response_format="b64_json" if catalog.B64_JSON in options else "url",
    )
    return request, [input_image(number, found) for number in range(1, image_count + 1)]


def full_cases():
    for found in catalog.OFFERS:
        for limits in found.modes:
            request, inputs = full_request(found, limits)
            yield pytest.param(
                request,
                inputs,
                f"{found.gateway}__{found.model}__{limits.mode}",
                id=f"{found.gateway}-{found.model}-{limits.mode}",
            )


def extra_cases():
    """Bare requests (nothing optional is sent) and the other size forms."""
    for gateway in catalog.GATEWAYS:
        request = ImageRequest(gateway, "wan2.7-image", "text-to-image", prompt="A red fox in snow")
        yield pytest.param(request, [], f"{gateway}__bare", id=f"{gateway}-bare")
        request = ImageRequest(
            gateway, "wan2.7-image", "text-to-image", prompt="A red fox in snow", width=1280, height=960
        )
        yield pytest.param(request, [], f"{gateway}__exact-size", id=f"{gateway}-exact-size")
        request = ImageRequest(
            gateway, "wan2.7-image", "text-to-image", prompt="A red fox in snow", size_tier="1K", aspect="1:1"
        )
        yield pytest.param(request, [], f"{gateway}__square-tier", id=f"{gateway}-square-tier")
    request = ImageRequest("anyfast", "wan2.7-image", "edit", prompt="Make it dusk", n=1)
    inputs = [input_image(1, catalog.offer("anyfast", "wan2.7-image"))]
    yield pytest.param(request, inputs, "anyfast__edit-one-image", id="anyfast-edit-one-image")
    request = ImageRequest("apimart", "wan2.7-image", "edit", prompt="", size_tier="2K")
    inputs = [input_image(1, catalog.offer("apimart", "wan2.7-image"))]
    yield pytest.param(request, inputs, "apimart__edit-no-prompt", id="apimart-edit-no-prompt")
    request = ImageRequest("anyfast", "doubao-seedream-4-5-251128", "text-to-image", prompt="A red fox")
    yield pytest.param(request, [], "anyfast__seedream-bare", id="anyfast-seedream-bare")


@pytest.fixture
def upstream():
    with FakeUpstream() as server:
        yield server


def capture(settings, upstream, request, inputs):
    settings.STUDIO_GATEWAYS = {
        **settings.STUDIO_GATEWAYS,
        request.gateway: {"api_key": "sk-test", "base_url": upstream.url},
    }
    protocol = catalog.GATEWAYS[request.gateway].protocol
    upstream.reply(200, SUBMIT_REPLIES[protocol])
    before = len(upstream.requests)
    state = gateways.adapter_for(request.gateway).submit(request, inputs)
    assert len(upstream.requests) == before + 1, "one submit is one request: never retried"
    return upstream.last, state


def check_golden(name, body):
    path = GOLDEN / f"{name}.json"
    if UPDATE or not path.exists():
        assert UPDATE, f"{path.name} is missing: run with STUDIO_UPDATE_GOLDEN=1 and review it"
        path.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n")
    assert body == json.loads(path.read_text())


@pytest.mark.parametrize(("request_", "inputs", "name"), [*full_cases(), *extra_cases()])
def test_wire_body_matches_golden(settings, upstream, request_, inputs, name):
    assert validate(request_, inputs) == {}, "golden cases must be valid requests"
    recorded, state = capture(settings, upstream, request_, inputs)
    assert recorded.method == "POST"
    assert recorded.path == "/v1/images/generations"
    check_golden(name, recorded.body)


@pytest.mark.parametrize("gateway", list(catalog.GATEWAYS))
def test_it_sends_bearer_key_json_and_user_agent(settings, upstream, gateway):
    request = ImageRequest(gateway, "wan2.7-image", "text-to-image", prompt="A red fox in snow")
    recorded, _ = capture(settings, upstream, request, [])
    assert recorded.headers["Authorization"] == "Bearer sk-test"
    assert recorded.headers["Content-Type"] == "application/json"
    assert recorded.headers["User-Agent"] == USER_AGENT


def test_every_golden_file_is_used():
    names = {values[2] for values in (case.values for case in [*full_cases(), *extra_cases()])}
    on_disk = {path.stem for path in GOLDEN.glob("*.json")}
    assert on_disk - names == set()


def test_it_sends_the_upstream_model_id_to_foxapi(settings, upstream):
    request = ImageRequest("foxapi", "wan2.7-image-pro", "text-to-image", prompt="A red fox in snow")
    recorded, _ = capture(settings, upstream, request, [])
    assert recorded.body["model"] == "wan-2.7-image-pro"


def test_submit_states_by_protocol(settings, upstream):
    request = ImageRequest("anyfast", "wan2.7-image", "text-to-image", prompt="A red fox in snow")
    _, state = capture(settings, upstream, request, [])
    assert (state.status, state.remote_id, [r.url for r in state.results]) == (
        "completed",
        None,
        ["https://cdn.example/a.png"],
    )

    request = ImageRequest("apimart", "wan2.7-image", "text-to-image", prompt="A red fox in snow")
    _, state = capture(settings, upstream, request, [])
    assert (state.status, state.remote_id) == ("running", "task_01HX")

    request = ImageRequest("foxapi", "wan2.7-image", "text-to-image", prompt="A red fox in snow")
    _, state = capture(settings, upstream, request, [])
    assert (state.status, state.remote_id, state.progress, state.estimated_seconds) == (
        "pending",
        "task-unified-1757165031-uyujaw3d",
        0,
        45,
    )


def test_adapters_say_whether_they_are_async():
    assert gateways.adapter_for("anyfast").is_async is False
    assert gateways.adapter_for("apimart").is_async is True
    assert gateways.adapter_for("gccai").is_async is True
    assert gateways.adapter_for("foxapi").is_async is True
