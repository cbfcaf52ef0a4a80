"""openai-sync: anyfast's OpenAI-style endpoint that answers with the images themselves.

Seed 000 (Wan 2.7) and seed 001 (Seedream 4.5). One blocking POST of tens of seconds; there
is no task to poll.
"""

from studio.gateways import catalog
from studio.gateways.errors import LOST, REJECTED, TRANSIENT, GatewayError, error_from_body, task_error
from studio.gateways.http import Adapter, timeouts
from studio.gateways.request import copy_set_options, data_uris
from studio.gateways.results import COMPLETED, FAILED, Result, TaskState

SEEDREAM = "doubao-seedream-4-5-251128"


def wire_size(request):
    """anyfast Wan's `size`: a preset or "{W}x{H}", never both.

    The presets 1K/2K/4K are squares (1024×1024, 2048×2048, 4096×4096), so a tier with any
    other aspect is sent as the pixels catalog.pixel_size computes for it.
    """
    if request.width and request.height:
        return f"{request.width}x{request.height}"
    if not request.size_tier:
        return None
    if request.aspect in (None, "1:1"):
        return request.size_tier
    width, height = catalog.pixel_size(request.size_tier, request.aspect)
    return f"{width}x{height}"


def wire_body(request, inputs):
    """The JSON body anyfast gets: only documented fields, only those set or the mode needs."""
    offer = catalog.offer(request.gateway, request.model)
    images = data_uris(inputs)
    if request.model == SEEDREAM:
        return seedream_body(request, offer, images)
    return wan_body(request, offer, images)


def wan_body(request, offer, images):
    storyboard = request.mode == catalog.STORYBOARD
    body = {"model": offer.upstream_model, "prompt": request.prompt}
    if len(images) == 1:
        body["image"] = images[0]
    elif images:
        # Seed 000 types `image` as a string yet allows "up to 9 images", which one string can't
        # carry. One image goes as the documented string; several go as an array of such strings,
        # the form the OpenAI-style images API that anyfast mirrors uses for several inputs.
        body["image"] = images
    if request.n != 1 or storyboard:
        # In a storyboard n is the most the model may make, and anyfast's default there is 12,
        # so it is always sent.
        body["n"] = request.n
    size = wire_size(request)
    if size:
        body["size"] = size
    if storyboard:
        body["enable_sequential"] = True
    copy_set_options(
        body, request, {"thinking_mode": "thinking_mode", "watermark": "watermark", "seed": "seed"}
    )
    if request.response_format != "url":
        body["response_format"] = request.response_format
    return body


def seedream_body(request, offer, images):
    body = {"model": offer.upstream_model, "prompt": request.prompt}
    if images:
        body["image"] = images[0]
    if request.size_tier:
        body["size"] = request.size_tier
    if request.mode == catalog.STORYBOARD:
        body["sequential_image_generation"] = "auto"
        body["sequential_image_generation_options"] = {"max_images": request.n}
    # Sent although it is the default: a streamed answer is server-sent events, whose pass-through
    # by anyfast is undocumented, and we read one JSON answer.
    body["stream"] = False
    if request.response_format != "url":
        body["response_format"] = request.response_format
    if request.watermark is not None:
        body["watermark"] = request.watermark
    return body


def state_from_answer(answer):
    """A completed (or failed) TaskState from anyfast's answer.

    data[] items carry url and/or b64_json and revised_prompt. Seedream's sequential generation
    may fail some images and not others: such an item carries an error instead of an image.
    """
    items = answer.get("data")
    if not isinstance(items, list):
        if answer.get("error"):
            raise error_from_body(200, answer)
        raise GatewayError(
            TRANSIENT, "anyfast answered without a list of images.", status=200, may_have_reached=True
        )
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else None
    results, failures = [], []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("error"):
            failures.append(task_error(item["error"], "One of the images failed."))
            continue
        url = item.get("url") or None
        b64_json = item.get("b64_json") or None
        if url or b64_json:
            revised = item.get("revised_prompt") if isinstance(item.get("revised_prompt"), str) else ""
            results.append(Result(index=len(results), url=url, b64_json=b64_json, revised_prompt=revised))
    messages = [failure.message for failure in failures]
    if not results:
        error = failures[0] if failures else GatewayError(REJECTED, "anyfast answered without any image.")
        return TaskState(None, FAILED, error=error, usage=usage, partial_failures=messages)
    return TaskState(None, COMPLETED, progress=100, results=results, usage=usage, partial_failures=messages)


class OpenAISyncAdapter(Adapter):
    is_async = False

    def submit(self, request, inputs):
        self.offer_for(request)
        answer = self.post(self.SUBMIT_PATH, wire_body(request, inputs), timeout=timeouts(sync=True))
        return state_from_answer(answer)

    def poll(self, remote_id):
        raise GatewayError(LOST, f"{self.gateway} answers with its images at once; there is no task to poll.")
