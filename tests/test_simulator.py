"""The gateway simulator over real loopback HTTP (live server + requests), as an adapter sees it."""

import base64
import io
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from PIL import Image

from studio import simulator
from studio.simulator.models import SimTask

pytestmark = pytest.mark.django_db(transaction=True)

LATENCY = 0.3
KEY = "test-key"
NEW_API = ("anyfast", "apimart", "gccai")
TASK_ASYNC = ("apimart", "gccai")


@pytest.fixture
def sim(simulator, settings):
    settings.STUDIO_SIMULATOR_LATENCY = LATENCY
    settings.STUDIO_SIMULATOR_TIMEOUT_SLEEP = 1.5
    return simulator.url


def post(sim, gateway, body, key=KEY, timeout=30):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return requests.post(
        f"{sim}/sim/{gateway}/v1/images/generations", json=body, headers=headers, timeout=timeout
    )


def get_task(sim, gateway, task_id, key=KEY):
    headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
    return requests.get(f"{sim}/sim/{gateway}/v1/tasks/{task_id}", headers=headers, timeout=10)


def body_for(gateway, prompt="A lighthouse at dusk", **extra):
    if gateway == "foxapi":
        return {"model": "wan-2.7-image", "prompt": prompt, **extra}
    return {"model": "wan2.7-image", "prompt": prompt, "size": "1K", **extra}


def submit(sim, gateway, **extra):
    response = post(sim, gateway, body_for(gateway, **extra))
    assert response.status_code == 200, response.text
    answer = response.json()
    return answer["id"] if gateway == "foxapi" else answer["data"][0]["task_id"]


def wait_final(sim, gateway, task_id, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = get_task(sim, gateway, task_id)
        assert response.status_code == 200, response.text
        answer = response.json()
        status = answer["status"] if gateway == "foxapi" else answer["data"]["status"]
        if status in ("completed", "failed", "cancelled"):
            return answer
        time.sleep(0.1)
    raise AssertionError("task never finished")


def task_async_urls(data):
    urls = []
    for image in data["result"]["images"]:
        urls.extend(image["url"] if isinstance(image["url"], list) else [image["url"]])
    return urls


def fox_urls(answer):
    if "results" in answer:
        return [item["url"] for item in answer["results"]]
    output = answer["output"]
    return output["urls"] if "urls" in output else [output["url"]]


def png_of(url):
    response = requests.get(url, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def data_uri(width, height, colour=(200, 60, 40), mode="RGB", fmt="PNG"):
    buffer = io.BytesIO()
    Image.new(mode, (width, height), colour).save(buffer, fmt)
    mime = "image/png" if fmt == "PNG" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"


@pytest.fixture
def image_host():
    """A tiny public image host on loopback, for foxapi's URL-only image_urls."""
    files = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            data = files.get(self.path)
            self.send_response(200 if data else 404)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def host(name, width, height, colour=(30, 90, 200)):
        buffer = io.BytesIO()
        Image.new("RGB", (width, height), colour).save(buffer, "PNG")
        files[f"/{name}"] = buffer.getvalue()
        return f"http://127.0.0.1:{server.server_address[1]}/{name}"

    yield host
    server.shutdown()
    server.server_close()


# --- keys and routes ------------------------------------------------------------------------


@pytest.mark.parametrize("gateway", ["anyfast", "apimart", "gccai", "foxapi"])
def test_it_rejects_a_request_without_a_key(sim, gateway):
    response = post(sim, gateway, body_for(gateway), key=None)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    if gateway == "foxapi":
        assert set(error) == {"message", "type"}
    else:
        assert set(error) == {"message", "type", "param", "code"}
        assert error["code"] == "invalid_api_key"
    assert simulator.counters(gateway)["submits"] == 0


@pytest.mark.parametrize("gateway", ["anyfast", "apimart", "foxapi"])
def test_it_rejects_the_invalid_key(sim, gateway):
    response = post(sim, gateway, body_for(gateway), key="invalid")
    assert response.status_code == 401
    assert "Invalid API key" in response.json()["error"]["message"]


@pytest.mark.parametrize("gateway", NEW_API)
def test_the_broke_key_has_no_quota_on_new_api(sim, gateway):
    response = post(sim, gateway, body_for(gateway), key="broke")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_user_quota"
    assert simulator.counters(gateway)["submits"] == 0


def test_the_broke_key_gets_402_on_foxapi(sim):
    response = post(sim, "foxapi", body_for("foxapi"), key="broke")
    assert response.status_code == 402
    assert response.json() == {
        "error": {"message": "Insufficient credits: please top up your account", "type": "insufficient_quota"}
    }


@pytest.mark.parametrize("gateway", ["apimart", "foxapi"])
def test_status_needs_a_key(sim, gateway):
    task_id = submit(sim, gateway)
    assert get_task(sim, gateway, task_id, key=None).status_code == 401
    assert get_task(sim, gateway, task_id, key="broke").status_code == 200  # reading is free


def test_it_rejects_get_on_generations(sim):
    response = requests.get(f"{sim}/sim/apimart/v1/images/generations", timeout=5)
    assert response.status_code == 405


def test_unknown_gateway_is_404(sim):
    assert post(sim, "nopeapi", body_for("apimart")).status_code == 404


def test_it_rejects_a_body_that_is_not_json(sim):
    response = requests.post(
        f"{sim}/sim/apimart/v1/images/generations", data=b"{nope", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("gateway", TASK_ASYNC)
def test_unknown_task_is_404_in_the_envelope(sim, gateway):
    response = get_task(sim, gateway, "task_NOPE")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "task_not_found"


def test_unknown_fox_task_is_404(sim):
    response = get_task(sim, "foxapi", "task-unified-1-nope")
    assert response.status_code == 404
    assert response.json() == {"error": {"message": "Task not found", "type": "not_found"}}


def test_anyfast_has_no_task_endpoint(sim):
    response = get_task(sim, "anyfast", "img_anything")
    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith("Invalid URL")


# --- anyfast (openai-sync) --------------------------------------------------------------------


def test_anyfast_blocks_then_returns_urls(sim):
    started = time.monotonic()
    response = post(
        sim, "anyfast", {"model": "wan2.7-image-pro", "prompt": "A red kite", "n": 2, "size": "1K"}
    )
    assert time.monotonic() - started >= LATENCY
    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"created", "data"}
    assert len(answer["data"]) == 2
    assert answer["data"][0]["revised_prompt"] == "A red kite"
    image = png_of(answer["data"][1]["url"])
    assert image.size == (1024, 1024)
    assert simulator.counters("anyfast") == {"submits": 1, "billed_images": 2}


def test_anyfast_takes_exact_pixels(sim):
    response = post(sim, "anyfast", {"model": "wan2.7-image", "prompt": "A wide dune", "size": "1280x720"})
    assert png_of(response.json()["data"][0]["url"]).size == (1280, 720)


def test_anyfast_embeds_b64_json(sim):
    response = post(
        sim,
        "anyfast",
        {"model": "wan2.7-image", "prompt": "A cat", "size": "1K", "response_format": "b64_json"},
    )
    entry = response.json()["data"][0]
    assert "url" not in entry
    image = Image.open(io.BytesIO(base64.b64decode(entry["b64_json"])))
    assert image.format == "PNG" and image.size == (1024, 1024)


def test_anyfast_seedream_reports_usage(sim):
    body = {
        "model": "doubao-seedream-4-5-251128",
        "prompt": "A product shot",
        "size": "1K",
        "sequential_image_generation": "auto",
        "sequential_image_generation_options": {"max_images": 2},
    }
    answer = post(sim, "anyfast", body).json()
    assert len(answer["data"]) == 2
    assert answer["data"][0]["size"] == "1024x1024"
    assert set(answer["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens", "output_tokens"}
    assert answer["usage"]["output_tokens"] == 2 * 1024 * 1024 // 256


def test_anyfast_seedream_streams_events(sim):
    body = {"model": "doubao-seedream-4-5-251128", "prompt": "A product shot", "size": "1K", "stream": True}
    response = post(sim, "anyfast", body)
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert "image_generation.partial_succeeded" in response.text
    assert response.text.rstrip().endswith("data: [DONE]")


def test_anyfast_edit_accepts_a_data_uri(sim):
    body = {"model": "wan2.7-image", "prompt": "Make it blue", "image": data_uri(600, 300), "size": "1K"}
    response = post(sim, "anyfast", body)
    assert response.status_code == 200, response.text
    assert png_of(response.json()["data"][0]["url"]).size == (1440, 720)  # follows the input's 2:1


# --- apimart, gccai (task-async) --------------------------------------------------------------


@pytest.mark.parametrize("gateway", TASK_ASYNC)
def test_task_async_submits_and_progresses(sim, gateway):
    response = post(sim, gateway, body_for(gateway, n=2))
    answer = response.json()
    assert answer["code"] == "success" and answer["message"] == ""
    task_id = answer["data"][0]["task_id"]
    assert task_id.startswith("task_") and answer["data"][0]["status"] == "processing"

    first = get_task(sim, gateway, task_id).json()
    assert first["code"] == 200
    data = first["data"]
    assert set(data) == set(
        "id status progress created estimated_time result completed actual_time error".split()
    )
    assert data["status"] in ("pending", "processing") and data["progress"] < 100
    assert data["estimated_time"] >= 1 and data["result"] is None
    time.sleep(LATENCY / 2)
    middle = get_task(sim, gateway, task_id).json()["data"]
    assert middle["progress"] > data["progress"]

    final = wait_final(sim, gateway, task_id)["data"]
    assert final["status"] == "completed" and final["progress"] == 100
    assert final["completed"] >= final["created"]
    images = final["result"]["images"]
    assert all(image["expires_at"] > time.time() + 23 * 3600 for image in images)
    assert len(task_async_urls(final)) == 2
    assert png_of(task_async_urls(final)[0]).size == (1024, 1024)


def test_task_async_alternates_the_two_url_shapes(sim):
    first = wait_final(sim, "apimart", submit(sim, "apimart", n=2))["data"]
    second = wait_final(sim, "apimart", submit(sim, "apimart", n=2))["data"]
    assert [type(image["url"]) for image in first["result"]["images"]] == [str, str]
    assert len(second["result"]["images"]) == 1 and isinstance(second["result"]["images"][0]["url"], list)
    assert len(task_async_urls(second)) == 2


def test_task_async_edit_follows_the_last_image(sim):
    body = {
        "model": "wan2.7-image",
        "prompt": "Repaint",
        "image_urls": [data_uri(300, 300), data_uri(800, 400)],
        "size": "1K",
    }
    task_id = post(sim, "apimart", body).json()["data"][0]["task_id"]
    final = wait_final(sim, "apimart", task_id)["data"]
    width, height = png_of(task_async_urls(final)[0]).size
    assert width == 2 * height


def test_task_async_ratio_with_resolution(sim):
    body = {"model": "wan2.7-image-pro", "prompt": "A skyline", "size": "16:9", "resolution": "1K"}
    task_id = post(sim, "gccai", body).json()["data"][0]["task_id"]
    final = wait_final(sim, "gccai", task_id)["data"]
    assert png_of(task_async_urls(final)[0]).size == (1360, 768)


# --- foxapi (fox-async) -----------------------------------------------------------------------


def test_foxapi_submit_returns_the_task_object(sim):
    answer = post(sim, "foxapi", {"model": "wan-2.7-image-pro", "prompt": "Neon rain"}).json()
    assert set(answer) == {"created", "id", "model", "object", "progress", "status", "task_info", "type"}
    assert answer["id"].startswith("task-unified-")
    assert answer["object"] == "image.generation.task" and answer["type"] == "image"
    assert answer["status"] == "pending" and answer["progress"] == 0
    assert answer["model"] == "wan-2.7-image-pro"
    assert answer["task_info"]["can_cancel"] is True and answer["task_info"]["estimated_time"] >= 1


def test_foxapi_alternates_results_and_output(sim):
    first = wait_final(sim, "foxapi", submit(sim, "foxapi", num_outputs=2, image_size="landscape_16_9"))
    second = wait_final(sim, "foxapi", submit(sim, "foxapi", num_outputs=2))
    third = wait_final(sim, "foxapi", submit(sim, "foxapi"))
    fourth = wait_final(sim, "foxapi", submit(sim, "foxapi"))
    for answer in (first, second, third, fourth):
        assert {"id", "object", "type", "model", "status", "progress", "created", "error", "usage"} <= set(
            answer
        )
        assert answer["status"] == "completed"
    assert len(first["results"]) == 2 and "output" not in first
    assert png_of(first["results"][0]["url"]).size == (1024, 576)
    assert "results" not in second and len(second["output"]["urls"]) == 2
    assert second["output"]["width"] == 1024 and second["output"]["height"] == 1024
    assert len(third["results"]) == 1
    assert "url" in fourth["output"] and png_of(fox_urls(fourth)[0]).size == (1024, 1024)
    assert set(first["usage"]) == {"credits_reserved", "user_group"}


def test_foxapi_fetches_image_urls(sim, image_host):
    url = image_host("cat.png", 640, 480)
    body = {"model": "wan-2.7-image", "prompt": "Image 1 as a watercolour", "image_urls": [url]}
    response = post(sim, "foxapi", body)
    assert response.status_code == 200, response.text
    answer = wait_final(sim, "foxapi", response.json()["id"])
    assert png_of(fox_urls(answer)[0]).size == (1024, 1024)


def test_foxapi_refuses_a_missing_image(sim, image_host):
    image_host("cat.png", 640, 480)
    missing = image_host("cat.png", 640, 480).replace("cat.png", "dog.png")
    response = post(sim, "foxapi", {"model": "wan-2.7-image", "prompt": "x", "image_urls": [missing]})
    assert response.status_code == 400
    assert "HTTP 404" in response.json()["error"]["message"]


# --- wire-level validation --------------------------------------------------------------------

PNG_300 = data_uri(300, 300)
PNG_SMALL = data_uri(100, 300)
PNG_THIN = data_uri(2000, 240)
PNG_ALPHA = data_uri(300, 300, (10, 20, 30, 0), mode="RGBA")
PALETTE = [
    {"hex": "#112233", "ratio": "50.00%"},
    {"hex": "#445566", "ratio": "30.00%"},
    {"hex": "#778899", "ratio": "20.00%"},
]

REJECTED = [
    # (gateway, body, the param named in the error)
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "negative_prompt": "y"}, "negative_prompt"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "image_urls": [PNG_300]}, "image_urls"),
    ("anyfast", {"model": "wan-2.7-image", "prompt": "x"}, "model"),
    ("anyfast", {"prompt": "x"}, "model"),
    ("anyfast", {"model": "wan2.7-image"}, "prompt"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x" * 5001}, "prompt"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "n": 5}, "n"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "n": 13, "enable_sequential": True}, "n"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "n": 0}, "n"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "size": "4K"}, "size"),
    ("anyfast", {"model": "wan2.7-image-pro", "prompt": "x", "size": "4K", "image": PNG_300}, "size"),
    (
        "anyfast",
        {"model": "wan2.7-image-pro", "prompt": "x", "size": "4K", "enable_sequential": True},
        "size",
    ),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "size": "3000x3000"}, "size"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "size": "500x500"}, "size"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "size": "3000x300"}, "size"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "size": "1024*1024"}, "size"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "size": "16:9"}, "size"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "seed": -1}, "seed"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "seed": 2147483648}, "seed"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "response_format": "png"}, "response_format"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "thinking_mode": "yes"}, "thinking_mode"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "image": [PNG_300] * 10}, "image"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "image": PNG_SMALL}, "image"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "image": PNG_THIN}, "image"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "image": PNG_ALPHA}, "image"),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "image": "data:image/png;base64,!!!"}, "image"),
    ("anyfast", {"model": "doubao-seedream-4-5-251128", "prompt": "x", "n": 2}, "n"),
    ("anyfast", {"model": "doubao-seedream-4-5-251128", "prompt": "x", "seed": 1}, "seed"),
    # seed 001 offers 1K, 2K and 4K only; the upstream model's W×H sizes are not anyfast's contract
    ("anyfast", {"model": "doubao-seedream-4-5-251128", "prompt": "x", "size": "2048x2048"}, "size"),
    (
        "anyfast",
        {
            "model": "doubao-seedream-4-5-251128",
            "prompt": "x",
            "sequential_image_generation": "auto",
            "sequential_image_generation_options": {"max_images": 16},
        },
        "sequential_image_generation_options.max_images",
    ),  # fmt: skip
    ("apimart", {"model": "wan2.7-image", "prompt": "x", "image": PNG_300}, "image"),
    ("apimart", {"model": "doubao-seedream-4-5-251128", "prompt": "x"}, "model"),
    ("apimart", {"model": "wan2.7-image"}, "prompt"),
    ("apimart", {"model": "wan2.7-image", "prompt": "x", "n": 5}, "n"),
    ("apimart", {"model": "wan2.7-image", "prompt": "x", "size": "4K"}, "size"),
    (
        "apimart",
        {
            "model": "wan2.7-image-pro",
            "prompt": "x",
            "size": "16:9",
            "resolution": "4K",
            "enable_sequential": True,
        },
        "resolution",
    ),  # fmt: skip
    ("apimart", {"model": "wan2.7-image-pro", "prompt": "x", "size": "4K", "image_urls": [PNG_300]}, "size"),
    ("apimart", {"model": "wan2.7-image", "prompt": "x", "size": "5:4"}, "size"),
    (
        "apimart",
        {"model": "wan2.7-image", "prompt": "x", "size": "1024x1024", "resolution": "1K"},
        "resolution",
    ),
    ("apimart", {"model": "wan2.7-image", "prompt": "x", "resolution": "8K"}, "resolution"),
    ("apimart", {"model": "wan2.7-image", "prompt": "x", "image_urls": [PNG_300] * 10}, "image_urls"),
    ("apimart", {"model": "wan2.7-image", "prompt": "x", "image_urls": PNG_300}, "image_urls"),
    ("apimart", {"model": "wan2.7-image", "prompt": "x", "bbox_list": [[]]}, "bbox_list"),
    (
        "apimart",
        {"model": "wan2.7-image", "prompt": "x", "image_urls": [PNG_300], "bbox_list": [[], []]},
        "bbox_list",
    ),
    (
        "apimart",
        {
            "model": "wan2.7-image",
            "prompt": "x",
            "image_urls": [PNG_300],
            "bbox_list": [[[0, 0, 10, 10]] * 3],
        },
        "bbox_list",
    ),  # fmt: skip
    (
        "apimart",
        {"model": "wan2.7-image", "prompt": "x", "image_urls": [PNG_300], "bbox_list": [[[0, 0, 301, 10]]]},
        "bbox_list",
    ),  # fmt: skip
    (
        "apimart",
        {"model": "wan2.7-image", "prompt": "x", "image_urls": [PNG_300], "bbox_list": [[[50, 0, 10, 10]]]},
        "bbox_list",
    ),  # fmt: skip
    ("apimart", {"model": "wan2.7-image", "prompt": "x", "color_palette": PALETTE[:2]}, "color_palette"),
    ("apimart", {"model": "wan2.7-image", "prompt": "x", "color_palette": PALETTE * 4}, "color_palette"),
    (
        "apimart",
        {
            "model": "wan2.7-image",
            "prompt": "x",
            "color_palette": [*PALETTE[:2], {"hex": "#778899", "ratio": "19.99%"}],
        },
        "color_palette",
    ),  # fmt: skip
    (
        "apimart",
        {
            "model": "wan2.7-image",
            "prompt": "x",
            "color_palette": [*PALETTE[:2], {"hex": "778899", "ratio": "20.00%"}],
        },
        "color_palette",
    ),  # fmt: skip
    (
        "apimart",
        {
            "model": "wan2.7-image",
            "prompt": "x",
            "color_palette": [*PALETTE[:2], {"hex": "#778899", "ratio": 20}],
        },
        "color_palette",
    ),  # fmt: skip
    (
        "apimart",
        {"model": "wan2.7-image", "prompt": "x", "color_palette": PALETTE, "enable_sequential": True},
        "color_palette",
    ),  # fmt: skip
    ("gccai", {"model": "wan2.7-image", "prompt": "x", "seed": 2147483648}, "seed"),
    ("gccai", {"model": "wan2.7-image", "prompt": "x", "num_outputs": 2}, "num_outputs"),
    ("foxapi", {"model": "wan2.7-image", "prompt": "x"}, "model"),
    ("foxapi", {"model": "wan-2.7-image"}, "prompt"),
    ("foxapi", {"model": "wan-2.7-image", "prompt": "x" * 2001}, "prompt"),
    ("foxapi", {"model": "wan-2.7-image", "prompt": "x", "negative_prompt": "y" * 501}, "negative_prompt"),
    ("foxapi", {"model": "wan-2.7-image", "prompt": "x", "num_outputs": 6}, "num_outputs"),
    ("foxapi", {"model": "wan-2.7-image", "prompt": "x", "n": 2}, "n"),
    ("foxapi", {"model": "wan-2.7-image", "prompt": "x", "size": "1K"}, "size"),
    ("foxapi", {"model": "wan-2.7-image", "prompt": "x", "image_size": "portrait_3_2"}, "image_size"),
    (
        "foxapi",
        {"model": "wan-2.7-image", "prompt": "x", "image_size": {"width": 4000, "height": 4000}},
        "image_size",
    ),
    ("foxapi", {"model": "wan-2.7-image", "prompt": "x", "image_urls": [PNG_300]}, "image_urls"),
    (
        "foxapi",
        {"model": "wan-2.7-image", "prompt": "x", "enable_prompt_expansion": True},
        "enable_prompt_expansion",
    ),
    ("foxapi", {"model": "wan-2.7-image", "prompt": "x", "seed": -5}, "seed"),
]


@pytest.mark.parametrize(("gateway", "body", "param"), REJECTED)
def test_it_rejects_what_the_gateway_rejects(sim, gateway, body, param):
    response = post(sim, gateway, body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    if gateway == "foxapi":
        assert set(error) == {"message", "type"}
        assert param.split(".")[0] in error["message"] or param == "image_urls"
    else:
        assert error["param"] == param, error
    assert simulator.counters(gateway)["submits"] == 0


ACCEPTED = [
    ("anyfast", {"model": "wan2.7-image-pro", "prompt": "x", "size": "4K", "thinking_mode": True, "seed": 0}),
    ("anyfast", {"model": "wan2.7-image", "prompt": "x", "n": 12, "enable_sequential": True, "size": "1K"}),
    (
        "anyfast",
        {
            "model": "wan2.7-image",
            "prompt": "x",
            "image": [PNG_300, PNG_300],
            "thinking_mode": True,
            "size": "1K",
        },
    ),  # fmt: skip
    (
        "apimart",
        {"model": "wan2.7-image-pro", "prompt": "x", "size": "3:2", "resolution": "4K", "seed": 2147483647},
    ),
    ("apimart", {"model": "wan2.7-image", "prompt": "x", "size": "1024*768", "negative_prompt": "blurry"}),
    (
        "apimart",
        {
            "model": "wan2.7-image",
            "image_urls": [PNG_300, PNG_300],
            "bbox_list": [[], [[1, 2, 30, 40]] * 2],
            "color_palette": PALETTE,
            "size": "1K",
        },
    ),  # fmt: skip
    (
        "gccai",
        {
            "model": "wan2.7-image",
            "prompt": "x",
            "n": 12,
            "enable_sequential": True,
            "size": "1K",
            "thinking_mode": False,
            "watermark": True,
        },
    ),  # fmt: skip
    ("foxapi", {"prompt": "x", "num_outputs": 5, "image_size": {"width": 1024, "height": 768}, "seed": None}),
    (
        "foxapi",
        {
            "model": "wan-2.7-image-pro",
            "prompt": "x",
            "enable_safety_checker": False,
            "negative_prompt": "y" * 500,
        },
    ),  # fmt: skip
]


@pytest.mark.parametrize(("gateway", "body"), ACCEPTED)
def test_it_accepts_what_the_gateway_accepts(sim, gateway, body, settings):
    settings.STUDIO_SIMULATOR_LATENCY = 0.01  # anyfast blocks; nothing here downloads the 4K image
    response = post(sim, gateway, body)
    assert response.status_code == 200, response.text
    assert simulator.counters(gateway)["submits"] == 1


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.parametrize("gateway", ["anyfast", "apimart", "foxapi"])
def test_rate_limit_is_429_without_retry_after(sim, gateway):
    response = post(sim, gateway, body_for(gateway, prompt="x [sim:rate-limit]"))
    assert response.status_code == 429
    assert "Retry-After" not in response.headers
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert simulator.counters(gateway)["submits"] == 0


@pytest.mark.parametrize("gateway", ["anyfast", "foxapi"])
def test_server_error_is_500(sim, gateway):
    response = post(sim, gateway, body_for(gateway, prompt="[sim:server-error] x"))
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"


def test_bad_gateway_is_an_html_page(sim):
    response = post(sim, "gccai", body_for("gccai", prompt="x [sim:bad-gateway-html]"))
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<h1>502 Bad Gateway</h1>" in response.text


def test_empty_body_is_503_with_nothing(sim):
    response = post(sim, "apimart", body_for("apimart", prompt="x [sim:empty-body]"))
    assert response.status_code == 503
    assert response.content == b""


def test_invalid_json_is_200_with_garbage(sim):
    response = post(sim, "anyfast", body_for("anyfast", prompt="x [sim:invalid-json]"))
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


@pytest.mark.parametrize("gateway", ["apimart", "foxapi"])
def test_timeout_creates_the_task_then_answers_too_late(sim, gateway):
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(sim, gateway, body_for(gateway, prompt="x [sim:timeout]"), timeout=0.5)
    assert simulator.counters(gateway)["submits"] == 1
    time.sleep(1.5)  # let the sleeping answer finish before the test database goes


def test_timeout_on_anyfast_blocks_past_the_read_timeout(sim):
    with pytest.raises(requests.exceptions.ReadTimeout):
        post(sim, "anyfast", body_for("anyfast", prompt="x [sim:timeout]"), timeout=0.5)
    assert simulator.counters("anyfast")["submits"] == 1
    time.sleep(1.5)
    assert simulator.counters("anyfast")["billed_images"] == 1  # the generation ran anyway


@pytest.mark.parametrize("gateway", ["apimart", "gccai", "foxapi"])
def test_drop_after_create_closes_the_connection(sim, gateway):
    with pytest.raises(requests.exceptions.ConnectionError):
        post(sim, gateway, body_for(gateway, prompt="x [sim:drop-after-create]"))
    assert simulator.counters(gateway)["submits"] == 1
    assert simulator.last_request(gateway)["prompt"] == "x [sim:drop-after-create]"


def test_drop_after_create_on_anyfast_bills_the_lost_images(sim):
    with pytest.raises(requests.exceptions.ConnectionError):
        post(sim, "anyfast", body_for("anyfast", prompt="x [sim:drop-after-create]", n=2))
    assert simulator.counters("anyfast") == {"submits": 1, "billed_images": 2}


@pytest.mark.parametrize("gateway", TASK_ASYNC)
def test_task_fails_on_task_async(sim, gateway):
    data = wait_final(sim, gateway, submit(sim, gateway, prompt="x [sim:task-fails]"))["data"]
    assert data["status"] == "failed"
    assert data["result"] is None
    assert "failed" in data["error"]["message"]
    assert simulator.counters(gateway) == {"submits": 1, "billed_images": 0}


def test_task_fails_on_foxapi(sim):
    answer = wait_final(sim, "foxapi", submit(sim, "foxapi", prompt="x [sim:task-fails]"))
    assert answer["status"] == "failed"
    assert answer["error"]["type"] == "task_error" and answer["error"]["message"]
    assert simulator.counters("foxapi")["billed_images"] == 0


def test_task_fails_on_anyfast_is_500_after_the_latency(sim):
    started = time.monotonic()
    response = post(sim, "anyfast", body_for("anyfast", prompt="x [sim:task-fails]"))
    assert time.monotonic() - started >= LATENCY
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "InternalError.Algo"
    assert simulator.counters("anyfast") == {"submits": 1, "billed_images": 0}


@pytest.mark.parametrize("gateway", NEW_API)
def test_moderation_on_new_api(sim, gateway):
    response = post(sim, gateway, body_for(gateway, prompt="x [sim:moderation]"))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "DataInspectionFailed"
    assert error["message"].startswith("Input data may contain inappropriate content")
    assert simulator.counters(gateway)["submits"] == 0


def test_moderation_on_foxapi(sim):
    response = post(sim, "foxapi", body_for("foxapi", prompt="x [sim:moderation]"))
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "DataInspectionFailed"


def test_partial_makes_one_image_fewer_and_bills_only_those(sim):
    data = wait_final(sim, "apimart", submit(sim, "apimart", prompt="x [sim:partial]", n=3))["data"]
    assert len(task_async_urls(data)) == 2
    assert simulator.counters("apimart") == {"submits": 1, "billed_images": 2}


def test_partial_seedream_lists_the_missing_image_as_an_error(sim):
    body = {
        "model": "doubao-seedream-4-5-251128",
        "prompt": "A series [sim:partial]",
        "size": "1K",
        "sequential_image_generation": "auto",
        "sequential_image_generation_options": {"max_images": 3},
    }
    data = post(sim, "anyfast", body).json()["data"]
    assert [("url" in entry, "error" in entry) for entry in data] == [
        (True, False),
        (True, False),
        (False, True),
    ]
    assert simulator.counters("anyfast")["billed_images"] == 2


@pytest.mark.parametrize("gateway", ["apimart", "foxapi"])
def test_lost_task_is_404_on_status(sim, gateway):
    task_id = submit(sim, gateway, prompt="x [sim:lost]")
    assert get_task(sim, gateway, task_id).status_code == 404
    time.sleep(LATENCY)
    assert get_task(sim, gateway, task_id).status_code == 404
    assert simulator.counters(gateway) == {"submits": 1, "billed_images": 0}


def test_slow_takes_three_times_the_latency(sim):
    task_id = submit(sim, "gccai", prompt="x [sim:slow]")
    time.sleep(LATENCY * 1.5)
    assert get_task(sim, "gccai", task_id).json()["data"]["status"] == "processing"
    time.sleep(LATENCY * 1.6)
    assert get_task(sim, "gccai", task_id).json()["data"]["status"] == "completed"


@pytest.mark.parametrize("gateway", ["apimart", "foxapi"])
def test_poll_rate_limit_answers_429_twice(sim, gateway):
    task_id = submit(sim, gateway, prompt="x [sim:poll-rate-limit]")
    assert [get_task(sim, gateway, task_id).status_code for _ in range(3)] == [429, 429, 200]


def test_poll_faults_take_any_answer_fault(sim):
    task_id = submit(sim, "apimart", prompt="x [sim:poll-bad-gateway-html]")
    assert get_task(sim, "apimart", task_id).status_code == 502


def test_cancelled_on_task_async_and_foxapi(sim):
    data = wait_final(sim, "apimart", submit(sim, "apimart", prompt="x [sim:cancelled]"))["data"]
    assert data["status"] == "cancelled" and data["result"] is None
    answer = wait_final(sim, "foxapi", submit(sim, "foxapi", prompt="x [sim:cancelled]"))
    assert answer["status"] == "failed" and answer["error"]["code"] == "task_cancelled"


def test_a_status_override_wins_over_the_clock(sim):
    task_id = submit(sim, "gccai")
    SimTask.objects.filter(task_id=task_id).update(status_override="cancelled")
    assert get_task(sim, "gccai", task_id).json()["data"]["status"] == "cancelled"


# --- counters, files, debug -------------------------------------------------------------------


def test_billing_follows_completion_once_without_polling(sim):
    submit(sim, "apimart", n=3)
    assert simulator.counters("apimart") == {"submits": 1, "billed_images": 0}
    time.sleep(LATENCY + 0.05)
    assert simulator.counters("apimart") == {"submits": 1, "billed_images": 3}
    assert simulator.counters("apimart") == {"submits": 1, "billed_images": 3}
    assert simulator.counters("gccai") == {"submits": 0, "billed_images": 0}


def test_polling_bills_once(sim):
    task_id = submit(sim, "foxapi", num_outputs=2)
    wait_final(sim, "foxapi", task_id)
    get_task(sim, "foxapi", task_id)
    assert SimTask.objects.get(task_id=task_id).billed_images == 2
    assert simulator.counters("foxapi")["billed_images"] == 2


def test_last_request_is_the_body_as_received(sim):
    assert simulator.last_request("gccai") is None
    post(sim, "gccai", {"model": "wan2.7-image", "prompt": "first"})
    post(sim, "gccai", {"model": "wan2.7-image", "prompt": "second", "bogus": 1})
    assert simulator.last_request("gccai") == {"model": "wan2.7-image", "prompt": "second", "bogus": 1}


def test_requests_log_cuts_base64_short(sim, client, staff):
    image = data_uri(400, 400)
    post(sim, "apimart", {"model": "wan2.7-image", "prompt": "p", "image_urls": [image], "size": "1K"})
    client.force_login(staff)
    answer = client.get("/sim/apimart/_requests").json()
    assert answer["gateway"] == "apimart" and answer["counters"]["submits"] == 1
    logged = answer["requests"][0]
    assert logged["status"] == 200
    assert len(logged["body"]["image_urls"][0]) < 300 < len(image)


def test_requests_log_is_for_staff_only(sim, client, owner, staff):
    post(sim, "apimart", {"model": "wan2.7-image", "prompt": "alice's secret idea", "size": "1K"})
    assert requests.get(f"{sim}/sim/apimart/_requests", timeout=5).status_code == 404
    assert client.get("/sim/apimart/_requests").status_code == 404
    client.force_login(owner)
    response = client.get("/sim/apimart/_requests")
    assert response.status_code == 404
    assert b"secret idea" not in response.content
    client.force_login(staff)
    response = client.get("/sim/apimart/_requests")
    assert response.status_code == 200
    assert b"secret idea" in response.content


def test_result_files_expire_after_a_day(sim):
    task_id = submit(sim, "apimart")
    url = task_async_urls(wait_final(sim, "apimart", task_id)["data"])[0]
    assert requests.get(url, timeout=10).status_code == 200
    SimTask.objects.filter(task_id=task_id).update(
        created=SimTask.objects.get(task_id=task_id).created - timedelta(hours=25)
    )
    assert requests.get(url, timeout=10).status_code == 403


def test_result_files_need_a_finished_task_and_a_real_index(sim):
    task_id = submit(sim, "gccai")
    url = f"{sim}/sim/gccai/files/{task_id}/0.png"
    assert requests.get(url, timeout=10).status_code == 404  # not made yet
    wait_final(sim, "gccai", task_id)
    assert requests.get(url, timeout=10).status_code == 200
    assert requests.get(url.replace("/0.png", "/1.png"), timeout=10).status_code == 404


def test_same_request_same_bytes_over_http(sim):
    body = {
        "model": "wan2.7-image",
        "prompt": "Same",
        "seed": 7,
        "n": 2,
        "size": "1K",
        "response_format": "b64_json",
    }
    first = post(sim, "anyfast", body).json()["data"]
    second = post(sim, "anyfast", body).json()["data"]
    assert first[0]["b64_json"] == second[0]["b64_json"]
    assert first[0]["b64_json"] != first[1]["b64_json"]


def test_state_lives_in_the_database(sim):
    task_id = submit(sim, "apimart")
    task = SimTask.objects.get(task_id=task_id)
    assert task.body["prompt"] == "A lighthouse at dusk" and task.n == 1
    # Another process (the worker, a restarted server) sees only the row: moving the clock
    # on the row is all it takes for the task to be done.
    SimTask.objects.filter(id=task.id).update(latency=0)
    assert get_task(sim, "apimart", task_id).json()["data"]["status"] == "completed"
