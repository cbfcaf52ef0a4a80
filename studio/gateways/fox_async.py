"""fox-async: foxapi (seed 004).

Submit answers with a task object; GET /v1/tasks/{id} returns the task again, with its
results once completed. foxapi fetches input images itself, so it takes public URLs only.
"""

from urllib.parse import quote

from studio.gateways import catalog
from studio.gateways.errors import REJECTED, TRANSIENT, GatewayError, task_error
from studio.gateways.http import Adapter
from studio.gateways.request import copy_set_options
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


def wire_image_size(request):
    """`image_size` as an explicit {"width", "height"}, or None for the gateway's default.

    foxapi documents the names of its presets (square_hd, landscape_16_9, ...) but not their
    pixels, so we always send the object: the image then has the size the form showed.
    """
    size = request.pixel_size()
    if size is None:
        return None
    width, height = size
    return {"width": width, "height": height}


def input_urls(inputs):
    urls = [image.url for image in inputs]
    if not all(urls):
        raise GatewayError(
            REJECTED,
            "foxapi only takes input images by URL, and it must be able to fetch them: "
            "set STUDIO_PUBLIC_URL to the portal's address as seen from the internet.",
        )
    return urls


def wire_body(request, inputs):
    """The JSON body: only documented fields, only those set or the mode needs."""
    offer = catalog.offer(request.gateway, request.model)
    body = {"model": offer.upstream_model, "prompt": request.prompt}
    if inputs:
        body["image_urls"] = input_urls(inputs)
    if request.n != 1:
        body["num_outputs"] = request.n
    image_size = wire_image_size(request)
    if image_size:
        body["image_size"] = image_size
    # "Do not pass this parameter unless necessary": the switches go only when the person set them.
    copy_set_options(body, request, {
        "negative_prompt": "negative_prompt",
        "seed": "seed",
        "safety_checker": "enable_safety_checker",
        "prompt_expansion": "enable_prompt_expansion",
    })
    return body


def task_object(answer):
    # The documented answer is the task object itself; a {"data": task} wrapper is unwrapped
    # in case the gateway's envelope changes to match its siblings.
    if "status" not in answer and isinstance(answer.get("data"), dict):
        return answer["data"]
    return answer


def results_from(task):
    """results[] items {"url"}, or the older documented output.url / output.urls[]."""
    found = []
    urls = []
    if isinstance(task.get("results"), list):
        urls = [item.get("url") if isinstance(item, dict) else item for item in task["results"]]
    output = task.get("output") if isinstance(task.get("output"), dict) else {}
    if not urls and isinstance(output.get("urls"), list):
        urls = [item.get("url") if isinstance(item, dict) else item for item in output["urls"]]
    if not urls and output.get("url"):
        urls = [output["url"]]
    for url in urls:
        if isinstance(url, str) and url:
            found.append(Result(index=len(found), url=url))
    return found


def state_from(answer, remote_id=None):
    task = task_object(answer)
    task_id = task.get("id") or remote_id
    if not task_id:
        raise GatewayError(
            TRANSIENT, "foxapi accepted the request but sent no task id.", status=200, may_have_reached=True
        )
    task_info = task.get("task_info") if isinstance(task.get("task_info"), dict) else {}
    status = status_from_word(task.get("status") or PENDING)
    state = TaskState(
        remote_id=str(task_id),
        status=status,
        progress=progress_from(task.get("progress")),
        estimated_seconds=whole_number(task_info.get("estimated_time")),
        usage=task.get("usage") if isinstance(task.get("usage"), dict) else None,
    )
    if status == COMPLETED:
        state.progress = 100
        state.results = results_from(task)
        if not state.results:
            state.status = FAILED
            state.error = GatewayError(REJECTED, "foxapi reported the task completed but sent no images.")
    elif status == FAILED:
        state.error = task_error(task.get("error"))
    return state


class FoxAsyncAdapter(Adapter):
    def submit(self, request, inputs):
        self.offer_for(request)
        body = wire_body(request, inputs)
        return state_from(self.post(self.SUBMIT_PATH, body))

    def poll(self, remote_id):
        path = self.TASK_PATH.format(id=quote(str(remote_id), safe=""))
        return state_from(self.get(path), remote_id)
