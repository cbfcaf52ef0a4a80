"""How the adapters read every documented answer shape and every way a gateway can fail,
over real loopback HTTP against tests/fake_upstream.py."""

import base64
import io

import pytest
from PIL import Image as PILImage

from studio import gateways, media
from studio.gateways import catalog, http
from studio.gateways.errors import ACCOUNT, LOST, REJECTED, TRANSIENT, GatewayError
from studio.gateways.request import ImageRequest, InputImage
from tests.fake_upstream import FakeUpstream, closed_port_url

TASK_SUBMITTED = {
    "code": "success",
    "message": "",
    "data": [{"task_id": "task_01HX", "status": "processing"}],
}


@pytest.fixture
def upstream():
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def point(settings, upstream):
    """Point one gateway at the fake upstream with a key."""
    settings.STUDIO_GATEWAY_READ_TIMEOUT = 2
    settings.STUDIO_SYNC_READ_TIMEOUT = 2

    def point_gateway(gateway, base_url=None, api_key="sk-test"):
        settings.STUDIO_GATEWAYS = {
            **settings.STUDIO_GATEWAYS,
            gateway: {"api_key": api_key, "base_url": base_url or upstream.url},
        }
        return gateways.adapter_for(gateway)

    return point_gateway


def fox_request(**fields):
    return ImageRequest("foxapi", "wan2.7-image", "text-to-image", prompt="A red fox in snow", **fields)


def task_request(gateway="apimart", **fields):
    return ImageRequest(gateway, "wan2.7-image", "text-to-image", prompt="A red fox in snow", **fields)


def anyfast_request(model="wan2.7-image", **fields):
    return ImageRequest("anyfast", model, "text-to-image", prompt="A red fox in snow", **fields)


def task_status(status, **data):
    return {"code": 200, "data": {"id": "task_01HX", "status": status, **data}}


def png_bytes(mode, colour, size=(300, 300)):
    out = io.BytesIO()
    PILImage.new(mode, size, colour).save(out, format="PNG")
    return out.getvalue()


def ready(gateway, *images, model="wan2.7-image"):
    """Input images as media.input_images hands them to this gateway's adapter."""
    offer = catalog.offer(gateway, model)
    return [media.prepare_input(image, offer) for image in images]


def decode_data_uri(uri):
    head, encoded = uri.split(",", 1)
    return head, PILImage.open(io.BytesIO(base64.b64decode(encoded)))


# --- task-async answers -----------------------------------------------------------------------


def test_task_async_submit_returns_the_task_id(point, upstream):
    upstream.reply(200, TASK_SUBMITTED)
    state = point("apimart").submit(task_request(), [])
    assert (state.remote_id, state.status) == ("task_01HX", "running")


def test_task_async_submit_accepts_code_200_and_data_as_an_object(point, upstream):
    upstream.reply(200, {"code": 200, "data": {"task_id": "task_02", "status": "pending"}})
    state = point("gccai").submit(task_request("gccai"), [])
    assert (state.remote_id, state.status) == ("task_02", "pending")


def test_task_async_submit_accepts_code_as_the_string_200(point, upstream):
    upstream.reply(200, {"code": "200", "data": [{"task_id": "task_03", "status": "processing"}]})
    assert point("apimart").submit(task_request(), []).remote_id == "task_03"


def test_task_async_submit_without_a_task_id_may_have_reached(point, upstream):
    upstream.reply(200, {"code": "success", "data": []})
    with pytest.raises(GatewayError) as caught:
        point("apimart").submit(task_request(), [])
    assert caught.value.error_class == TRANSIENT
    assert caught.value.may_have_reached is True


def test_task_async_poll_reads_progress_and_estimate(point, upstream):
    upstream.reply(200, task_status("processing", progress=40, estimated_time=30))
    state = point("apimart").poll("task_01HX")
    assert (state.status, state.progress, state.estimated_seconds) == ("running", 40, 30)
    assert upstream.last.method == "GET"
    assert upstream.last.path == "/v1/tasks/task_01HX?language=en"


def test_task_async_poll_reads_url_as_a_string(point, upstream):
    result = {"images": [{"url": "https://cdn.example/1.png", "expires_at": 1700086400}]}
    upstream.reply(200, task_status("completed", progress=100, result=result))
    state = point("apimart").poll("task_01HX")
    assert state.status == "completed"
    assert [(r.index, r.url) for r in state.results] == [(0, "https://cdn.example/1.png")]


def test_task_async_poll_flattens_url_arrays(point, upstream):
    result = {
        "images": [
            {"url": ["https://cdn.example/1.png", "https://cdn.example/2.png"], "expires_at": 1},
            {"url": "https://cdn.example/3.png", "expires_at": 1},
        ]
    }
    upstream.reply(
        200, {"code": "success", "data": {"id": "task_01HX", "status": "completed", "result": result}}
    )
    state = point("apimart").poll("task_01HX")
    assert [(r.index, r.url) for r in state.results] == [
        (0, "https://cdn.example/1.png"),
        (1, "https://cdn.example/2.png"),
        (2, "https://cdn.example/3.png"),
    ]


def test_task_async_completed_without_images_is_a_failure(point, upstream):
    upstream.reply(200, task_status("completed", result={"images": []}))
    state = point("apimart").poll("task_01HX")
    assert state.status == "failed"
    assert state.error.error_class == REJECTED


def test_task_async_failed_task_carries_the_gateway_message(point, upstream):
    error = {"code": "DataInspectionFailed", "message": "Input data may contain inappropriate content."}
    upstream.reply(200, task_status("failed", error=error))
    state = point("apimart").poll("task_01HX")
    assert state.status == "failed"
    assert state.error.error_class == REJECTED
    assert state.error.message == "Input data may contain inappropriate content."


def test_task_async_failed_task_with_an_upstream_fault_is_transient(point, upstream):
    upstream.reply(200, task_status("failed", error={"code": "InternalError", "message": "Upstream broke."}))
    state = point("apimart").poll("task_01HX")
    assert (state.error.error_class, state.error.message) == (TRANSIENT, "Upstream broke.")


def test_task_async_failed_task_with_message_beside_the_error(point, upstream):
    upstream.reply(200, task_status("failed", message="The prompt was refused."))
    state = point("apimart").poll("task_01HX")
    assert state.error.message == "The prompt was refused."


def test_task_async_cancelled_task(point, upstream):
    upstream.reply(200, task_status("cancelled"))
    assert point("apimart").poll("task_01HX").status == "cancelled"


def test_task_async_http_200_with_an_error_code_is_an_error(point, upstream):
    upstream.reply(200, {"code": 404, "message": "task not found"})
    with pytest.raises(GatewayError) as caught:
        point("apimart").poll("task_gone")
    assert (caught.value.error_class, caught.value.message) == (LOST, "task not found")


# --- foxapi answers ---------------------------------------------------------------------------


def fox_task(status, **fields):
    return {
        "id": "task-unified-1",
        "object": "image.generation.task",
        "type": "image",
        "model": "wan-2.7-image",
        "status": status,
        "progress": 0,
        "created": 1757165031,
        **fields,
    }


def test_foxapi_poll_reads_results(point, upstream):
    usage = {"credits_reserved": 2, "user_group": "default"}
    upstream.reply(
        200, fox_task("completed", progress=100, results=[{"url": "https://fox.example/1.png"}], usage=usage)
    )
    state = point("foxapi").poll("task-unified-1")
    assert [r.url for r in state.results] == ["https://fox.example/1.png"]
    assert state.usage == usage
    assert upstream.last.path == "/v1/tasks/task-unified-1"


def test_foxapi_poll_reads_the_older_output_urls(point, upstream):
    output = {
        "urls": ["https://fox.example/1.png", "https://fox.example/2.png"],
        "width": 1024,
        "height": 1024,
    }
    upstream.reply(200, fox_task("completed", output=output))
    state = point("foxapi").poll("task-unified-1")
    assert [r.url for r in state.results] == ["https://fox.example/1.png", "https://fox.example/2.png"]


def test_foxapi_poll_reads_the_older_output_url(point, upstream):
    upstream.reply(200, fox_task("completed", output={"url": "https://fox.example/1.png"}))
    assert [r.url for r in point("foxapi").poll("task-unified-1").results] == ["https://fox.example/1.png"]


def test_foxapi_failed_task(point, upstream):
    error = {"code": "generation_failed", "message": "The model could not draw this.", "type": "task_error"}
    upstream.reply(200, fox_task("failed", error=error))
    state = point("foxapi").poll("task-unified-1")
    assert state.status == "failed"
    assert (state.error.error_class, state.error.message) == (REJECTED, "The model could not draw this.")


def test_foxapi_running_task(point, upstream):
    upstream.reply(
        200, fox_task("processing", progress=55, task_info={"can_cancel": True, "estimated_time": 20})
    )
    state = point("foxapi").poll("task-unified-1")
    assert (state.status, state.progress, state.estimated_seconds) == ("running", 55, 20)


def test_foxapi_needs_public_urls_for_input_images(point, upstream):
    request = ImageRequest("foxapi", "wan2.7-image", "edit", prompt="Make it dusk")
    image = InputImage(data=b"fake", mime="image/jpeg", width=800, height=600, url=None)
    with pytest.raises(GatewayError) as caught:
        point("foxapi").submit(request, ready("foxapi", image))
    assert caught.value.error_class == REJECTED
    assert "STUDIO_PUBLIC_URL" in caught.value.message
    assert upstream.requests == []


# --- anyfast answers --------------------------------------------------------------------------


def test_anyfast_reads_urls_and_revised_prompts(point, upstream):
    upstream.reply(
        200,
        {
            "created": 1,
            "data": [
                {"url": "https://any.example/1.png", "revised_prompt": "A red fox in deep snow"},
                {"url": "https://any.example/2.png"},
            ],
        },
    )
    state = point("anyfast").submit(anyfast_request(n=2), [])
    assert state.status == "completed"
    assert [(r.index, r.url, r.revised_prompt) for r in state.results] == [
        (0, "https://any.example/1.png", "A red fox in deep snow"),
        (1, "https://any.example/2.png", ""),
    ]


def test_anyfast_reads_b64_json(point, upstream):
    upstream.reply(200, {"created": 1, "data": [{"b64_json": "aGVsbG8="}]})
    state = point("anyfast").submit(anyfast_request(response_format="b64_json"), [])
    assert (state.results[0].b64_json, state.results[0].url) == ("aGVsbG8=", None)


def test_anyfast_seedream_usage_and_partial_failures(point, upstream):
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 3980, "output_tokens": 3980}
    upstream.reply(
        200,
        {
            "created": 1,
            "usage": usage,
            "data": [
                {"url": "https://any.example/1.png"},
                {"error": {"code": "OutputImageSensitiveContentDetected", "message": "Image 2 was blocked."}},
            ],
        },
    )
    request = ImageRequest("anyfast", "doubao-seedream-4-5-251128", "storyboard", prompt="Four seasons", n=2)
    state = point("anyfast").submit(request, [])
    assert state.status == "completed"
    assert [r.url for r in state.results] == ["https://any.example/1.png"]
    assert state.usage == usage
    assert state.partial_failures == ["Image 2 was blocked."]


def test_anyfast_all_images_failing_is_a_failed_state(point, upstream):
    upstream.reply(
        200,
        {
            "created": 1,
            "data": [
                {"error": {"code": "OutputImageSensitiveContentDetected", "message": "Blocked."}},
            ],
        },
    )
    state = point("anyfast").submit(anyfast_request(), [])
    assert state.status == "failed"
    assert (state.error.error_class, state.error.message) == (REJECTED, "Blocked.")


def test_anyfast_has_nothing_to_poll():
    with pytest.raises(GatewayError) as caught:
        gateways.adapter_for("anyfast").poll("anything")
    assert caught.value.error_class == LOST


def test_anyfast_flattens_transparent_png_onto_white(point, upstream):
    upstream.reply(200, {"created": 1, "data": [{"url": "https://any.example/1.png"}]})
    image = InputImage(data=png_bytes("RGBA", (255, 0, 0, 0)), mime="image/png", width=300, height=300)
    request = ImageRequest("anyfast", "wan2.7-image", "edit", prompt="Add a hat")
    point("anyfast").submit(request, ready("anyfast", image))
    head, sent = decode_data_uri(upstream.last.body["image"])
    assert head == "data:image/png;base64"
    assert sent.mode == "RGB"
    assert sent.getpixel((10, 10)) == (255, 255, 255)


def test_anyfast_sends_an_opaque_png_unchanged(point, upstream):
    upstream.reply(200, {"created": 1, "data": [{"url": "https://any.example/1.png"}]})
    data = png_bytes("RGB", (0, 128, 0))
    image = InputImage(data=data, mime="image/png", width=300, height=300)
    request = ImageRequest("anyfast", "wan2.7-image", "edit", prompt="Add a hat")
    point("anyfast").submit(request, ready("anyfast", image))
    assert upstream.last.body["image"] == "data:image/png;base64," + base64.b64encode(data).decode()


def test_task_async_keeps_transparency_and_re_encodes_other_formats(point, upstream):
    upstream.reply(200, TASK_SUBMITTED)
    gif = io.BytesIO()
    PILImage.new("RGB", (300, 300), (0, 0, 255)).save(gif, format="GIF")
    images = [
        InputImage(data=png_bytes("RGBA", (255, 0, 0, 0)), mime="image/png", width=300, height=300),
        InputImage(data=gif.getvalue(), mime="image/gif", width=300, height=300),
    ]
    request = ImageRequest("apimart", "wan2.7-image", "reference", prompt="Blend image 1 and image 2")
    point("apimart").submit(request, ready("apimart", *images))
    first, second = upstream.last.body["image_urls"]
    assert first == "data:image/png;base64," + base64.b64encode(images[0].data).decode()
    head, sent = decode_data_uri(second)
    assert head == "data:image/png;base64"
    assert sent.format == "PNG"


# --- HTTP errors ------------------------------------------------------------------------------

HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"


@pytest.mark.parametrize(
    ("status", "reply", "error_class", "message"),
    [
        (
            429,
            {"error": {"message": "Rate limit reached", "type": "rate_limit_error"}},
            TRANSIENT,
            "Rate limit reached",
        ),
        (500, {"error": {"message": "Internal error", "type": "server_error"}}, TRANSIENT, "Internal error"),
        (
            503,
            {"error": {"message": "No channel available", "type": "service_unavailable_error"}},
            TRANSIENT,
            "No channel available",
        ),
        (504, {}, TRANSIENT, "The gateway answered HTTP 504 (Gateway Timeout)."),
        (
            401,
            {
                "error": {
                    "message": "Invalid API key",
                    "type": "authentication_error",
                    "code": "invalid_api_key",
                }
            },
            ACCOUNT,
            "Invalid API key",
        ),
        (
            402,
            {"error": {"message": "Insufficient balance", "type": "insufficient_quota"}},
            ACCOUNT,
            "Insufficient balance",
        ),
        (
            403,
            {"error": {"message": "user quota is not enough", "code": "insufficient_user_quota"}},
            ACCOUNT,
            "user quota is not enough",
        ),
        (
            400,
            {"error": {"message": "prompt is required", "type": "invalid_request_error"}},
            REJECTED,
            "prompt is required",
        ),
        (
            422,
            {
                "error": {
                    "message": "No channel supports these options",
                    "code": "unsupported_advanced_options",
                }
            },
            REJECTED,
            "No channel supports these options",
        ),
        (
            400,
            {"code": "DataInspectionFailed", "message": "Input text may contain inappropriate content."},
            REJECTED,
            "Input text may contain inappropriate content.",
        ),
        (
            400,
            {"error": {"code": "InputImageSensitiveContentDetected", "message": "The image was refused."}},
            REJECTED,
            "The image was refused.",
        ),
        (500, {"msg": "upstream exploded"}, TRANSIENT, "upstream exploded"),
        (500, {"data": {"message": "nested words"}}, TRANSIENT, "nested words"),
        (500, {"data": {"error": {"message": "deeper words"}}}, TRANSIENT, "deeper words"),
    ],
)
def test_http_errors_on_submit(point, upstream, status, reply, error_class, message):
    upstream.reply(status, reply)
    with pytest.raises(GatewayError) as caught:
        point("apimart").submit(task_request(), [])
    error = caught.value
    assert (error.error_class, error.message, error.status) == (error_class, message, status)
    assert error.may_have_reached is False
    assert len(upstream.requests) == 1, "a failed submit is never resent by the HTTP layer"


@pytest.mark.parametrize(
    ("status", "raw", "content_type", "error_class", "message"),
    [
        (
            502,
            HTML_502,
            "text/html",
            TRANSIENT,
            "The gateway answered with an HTML error page (HTTP 502): 502 Bad Gateway.",
        ),
        (
            503,
            b"<html><body>down</body></html>",
            "text/html",
            TRANSIENT,
            "The gateway answered with an HTML error page (HTTP 503).",
        ),
        (500, b"", "application/json", TRANSIENT, "The gateway answered with an empty body (HTTP 500)."),
        (
            500,
            b"{not json",
            "application/json",
            TRANSIENT,
            "The gateway answered with something that is not JSON (HTTP 500): {not json",
        ),
        (
            403,
            b"<html><title>Forbidden</title></html>",
            "text/html",
            ACCOUNT,
            "The gateway answered with an HTML error page (HTTP 403): Forbidden.",
        ),
    ],
)
def test_unreadable_error_answers(point, upstream, status, raw, content_type, error_class, message):
    upstream.reply(status, raw=raw, content_type=content_type)
    with pytest.raises(GatewayError) as caught:
        point("foxapi").submit(fox_request(), [])
    assert (caught.value.error_class, caught.value.message, caught.value.status) == (
        error_class,
        message,
        status,
    )


def test_unreadable_success_answer_to_a_submit_may_have_reached(point, upstream):
    upstream.reply(200, raw=b"<html>captive portal</html>", content_type="text/html")
    with pytest.raises(GatewayError) as caught:
        point("anyfast").submit(anyfast_request(), [])
    assert caught.value.error_class == TRANSIENT
    assert caught.value.may_have_reached is True


@pytest.mark.parametrize("gateway", ["apimart", "foxapi"])
def test_404_on_poll_is_a_lost_task(point, upstream, gateway):
    upstream.reply(404, {"error": {"message": "task not found", "type": "not_found"}})
    with pytest.raises(GatewayError) as caught:
        point(gateway).poll("task_gone")
    assert (caught.value.error_class, caught.value.message) == (LOST, "task not found")


def test_404_on_submit_is_for_the_admin(point, upstream):
    upstream.reply(404, raw=b"", content_type="text/plain")
    with pytest.raises(GatewayError) as caught:
        point("apimart").submit(task_request(), [])
    assert caught.value.error_class == ACCOUNT


def test_429_on_poll_is_transient(point, upstream):
    upstream.reply(429, {"error": {"message": "Too many requests", "type": "rate_limit_error"}})
    with pytest.raises(GatewayError) as caught:
        point("apimart").poll("task_01HX")
    assert caught.value.error_class == TRANSIENT


# --- Connection failures ----------------------------------------------------------------------


def test_read_timeout_on_submit_may_have_reached(point, upstream, settings):
    settings.STUDIO_GATEWAY_READ_TIMEOUT = 0.3
    upstream.reply(200, TASK_SUBMITTED, delay=1.0)
    with pytest.raises(GatewayError) as caught:
        point("apimart").submit(task_request(), [])
    error = caught.value
    assert (error.error_class, error.may_have_reached, error.status) == (TRANSIENT, True, None)
    assert len(upstream.requests) == 1


def test_sync_gateway_uses_its_own_read_timeout(point, upstream, settings):
    settings.STUDIO_GATEWAY_READ_TIMEOUT = 0.2
    settings.STUDIO_SYNC_READ_TIMEOUT = 3
    upstream.reply(200, {"created": 1, "data": [{"url": "https://any.example/1.png"}]}, delay=0.5)
    assert point("anyfast").submit(anyfast_request(), []).status == "completed"


def test_connection_dropped_after_sending_may_have_reached(point, upstream):
    upstream.reply(200, drop=True)
    with pytest.raises(GatewayError) as caught:
        point("apimart").submit(task_request(), [])
    assert (caught.value.error_class, caught.value.may_have_reached) == (TRANSIENT, True)
    assert len(upstream.requests) == 1


def test_connection_refused_has_not_reached(point):
    with pytest.raises(GatewayError) as caught:
        point("apimart", base_url=closed_port_url()).submit(task_request(), [])
    error = caught.value
    assert (error.error_class, error.may_have_reached, error.status) == (TRANSIENT, False, None)


def test_poll_failures_never_claim_to_have_reached(point, upstream, settings):
    settings.STUDIO_GATEWAY_READ_TIMEOUT = 0.3
    upstream.reply(200, task_status("processing"), delay=1.0)
    with pytest.raises(GatewayError) as caught:
        point("apimart").poll("task_01HX")
    assert (caught.value.error_class, caught.value.may_have_reached) == (TRANSIENT, False)


# --- Configuration ----------------------------------------------------------------------------


def with_keys(settings, **keys):
    settings.STUDIO_GATEWAYS = {
        gateway: {"api_key": keys.get(gateway, ""), "base_url": f"https://{gateway}.example"}
        for gateway in ("anyfast", "apimart", "gccai", "foxapi")
    }


def test_gateway_state_follows_keys_and_simulator(settings):
    with_keys(settings, apimart="sk-1")
    settings.STUDIO_SIMULATOR = False
    assert gateways.gateway_state("apimart") == "configured"
    assert gateways.gateway_state("anyfast") == "not configured"
    assert gateways.usable_gateways() == ["apimart"]
    settings.STUDIO_SIMULATOR = True
    assert gateways.gateway_state("anyfast") == "simulator"
    assert gateways.gateway_state("apimart") == "configured"
    assert gateways.usable_gateways() == ["anyfast", "apimart", "gccai", "foxapi"]


def test_simulated_gateway_talks_to_the_simulator_url(settings, upstream):
    with_keys(settings)
    settings.STUDIO_SIMULATOR = True
    settings.STUDIO_SIMULATOR_URL = upstream.url
    upstream.reply(200, TASK_SUBMITTED)
    gateways.adapter_for("gccai").submit(task_request("gccai"), [])
    assert upstream.last.path == "/sim/gccai/v1/images/generations"
    assert upstream.last.headers["Authorization"] == "Bearer simulator"


def test_unconfigured_gateway_is_an_account_error(settings, upstream):
    with_keys(settings)
    settings.STUDIO_SIMULATOR = False
    with pytest.raises(GatewayError) as caught:
        gateways.adapter_for("foxapi").submit(fox_request(), [])
    assert caught.value.error_class == ACCOUNT
    assert "STUDIO_FOXAPI_API_KEY" in caught.value.message


def test_one_pooled_session_per_gateway_and_key(settings):
    with_keys(settings, apimart="sk-1", gccai="sk-2")
    first = gateways.adapter_for("apimart").session
    assert gateways.adapter_for("apimart").session is first
    assert gateways.adapter_for("gccai").session is not first
    assert first.headers["Authorization"] == "Bearer sk-1"
    with_keys(settings, apimart="sk-new")
    assert gateways.adapter_for("apimart").session.headers["Authorization"] == "Bearer sk-new"


def test_sessions_never_retry_by_themselves(settings):
    with_keys(settings, apimart="sk-1")
    session = gateways.adapter_for("apimart").session
    for prefix in ("http://", "https://"):
        assert session.get_adapter(prefix + "x.example").max_retries.total == 0


def test_timeouts_come_from_settings(settings):
    settings.STUDIO_GATEWAY_CONNECT_TIMEOUT = 1
    settings.STUDIO_GATEWAY_READ_TIMEOUT = 2
    settings.STUDIO_SYNC_READ_TIMEOUT = 3
    assert http.timeouts() == (1, 2)
    assert http.timeouts(sync=True) == (1, 3)
    # The defaults are declared once, in settings.py.
    from studio import settings as declared

    assert (declared.STUDIO_GATEWAY_CONNECT_TIMEOUT, declared.STUDIO_GATEWAY_READ_TIMEOUT) == (10.0, 30.0)
    assert declared.STUDIO_SYNC_READ_TIMEOUT == 300.0


def test_an_unreadable_image_that_needs_converting_is_rejected(point, upstream):
    image = InputImage(data=b"not a png at all", mime="image/png", width=300, height=300)
    request = ImageRequest("anyfast", "wan2.7-image", "edit", prompt="Add a hat")
    with pytest.raises(GatewayError) as caught:
        point("anyfast").submit(request, ready("anyfast", image))
    assert caught.value.error_class == REJECTED
    assert upstream.requests == []
