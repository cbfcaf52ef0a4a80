"""task-async: apimart and gccai, the same API (seeds 002, 003).

Submit answers with a task id; GET /v1/tasks/{id} tells how the task is doing and, once it
has completed, where the images are.
"""

from urllib.parse import quote

from studio.gateways import catalog
from studio.gateways.errors import REJECTED, TRANSIENT, GatewayError, error_from_body, task_error
from studio.gateways.http import Adapter
from studio.gateways.request import copy_set_options, data_uris
from studio.gateways.results import (
    COMPLETED,
    FAILED,
    PENDING,
    Result,
    TaskState,
    progress_from,
    status_from_word,
    whole_number,
)

# `code` is "success" in the documentation and has been seen as the integer 200: both mean yes.
SUCCESS_CODES = ("success", 200, "200")


def wire_size(request):
    """`size` (and `resolution`) for a request: pixels "WxH", a ratio with a tier, or a tier."""
    if request.width and request.height:
        return {"size": f"{request.width}x{request.height}"}
    if request.size_tier and request.aspect:
        return {"size": request.aspect, "resolution": request.size_tier}
    if request.size_tier:
        return {"size": request.size_tier}
    return {}


def wire_body(request, inputs):
    """The JSON body: only documented fields, only those set or the mode needs."""
    offer = catalog.offer(request.gateway, request.model)
    body = {"model": offer.upstream_model}
    if request.prompt:
        body["prompt"] = request.prompt  # optional when editing
    if inputs:
        body["image_urls"] = data_uris(inputs)
    storyboard = request.mode == catalog.STORYBOARD
    if request.n != 1 or storyboard:
        body["n"] = request.n
    body.update(wire_size(request))
    copy_set_options(body, request, {
        "negative_prompt": "negative_prompt",
        "watermark": "watermark",
        "seed": "seed",
        "thinking_mode": "thinking_mode",
    })
    if storyboard:
        body["enable_sequential"] = True
    if request.mode == catalog.REGION_EDIT:
        # One inner list per entry of image_urls, [] for an image without boxes.
        boxes = list(request.boxes or [])
        boxes += [[]] * (len(inputs) - len(boxes))
        body["bbox_list"] = [[list(box) for box in image_boxes] for image_boxes in boxes]
    if request.palette:
        body["color_palette"] = [{"hex": entry["hex"], "ratio": entry["ratio"]} for entry in request.palette]
    return body


def check_code(answer, on_poll=False):
    """Raise when an HTTP 200 answer's `code` says the request failed."""
    code = answer.get("code")
    if code is None or code in SUCCESS_CODES:
        return
    number = whole_number(code)
    if number is not None and number >= 300:
        raise error_from_body(number, answer, on_poll=on_poll)
    error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
    raise task_error(
        {"code": str(code), "message": error.get("message") or answer.get("message") or ""},
        f"The gateway answered with code {code}.",
    )


def state_from_submit(answer, gateway):
    check_code(answer)
    data = answer.get("data")
    entry = data[0] if isinstance(data, list) and data else data
    entry = entry if isinstance(entry, dict) else {}
    task_id = entry.get("task_id") or entry.get("id")
    if not task_id:
        # It said yes without saying to what: a task may exist that we can't follow.
        raise GatewayError(
            TRANSIENT,
            f"{gateway} accepted the request but sent no task id.",
            status=200,
            may_have_reached=True,
        )
    return TaskState(
        remote_id=str(task_id),
        status=status_from_word(entry.get("status") or PENDING),
        progress=progress_from(entry.get("progress")),
        estimated_seconds=whole_number(entry.get("estimated_time")),
    )


def results_from(result):
    """Results from data.result: images[].url is a string or an array of strings (both documented)."""
    images = result.get("images") if isinstance(result, dict) else None
    found = []
    for image in images if isinstance(images, list) else []:
        url = image.get("url") if isinstance(image, dict) else image
        for one in url if isinstance(url, list) else [url]:
            if isinstance(one, str) and one:
                found.append(Result(index=len(found), url=one))
    return found


def state_from_task(answer, remote_id, gateway):
    check_code(answer, on_poll=True)
    data = answer.get("data") if isinstance(answer.get("data"), dict) else {}
    status = status_from_word(data.get("status"))
    state = TaskState(
        remote_id=remote_id,
        status=status,
        progress=progress_from(data.get("progress")),
        estimated_seconds=whole_number(data.get("estimated_time")),
    )
    if status == COMPLETED:
        state.progress = 100
        state.results = results_from(data.get("result"))
        if not state.results:
            state.status = FAILED
            state.error = GatewayError(REJECTED, f"{gateway} reported the task completed but sent no images.")
    elif status == FAILED:
        state.error = task_error(data.get("error") or data.get("message") or answer.get("message"))
    return state


class TaskAsyncAdapter(Adapter):
    def submit(self, request, inputs):
        self.offer_for(request)
        answer = self.post(self.SUBMIT_PATH, wire_body(request, inputs))
        return state_from_submit(answer, self.gateway)

    def poll(self, remote_id):
        # language=en is documented: it asks for English messages in errors.
        path = self.TASK_PATH.format(id=quote(str(remote_id), safe="")) + "?language=en"
        return state_from_task(self.get(path), remote_id, self.gateway)
