"""Request bodies are refused by their size before they are read.

A body whose Content-Length is over the limit of where it is sent gets a 413 at once, without a
byte of it being read or spooled to disk. A body without a Content-Length (chunked) is counted
as it is parsed and cut off at the same limit. The limits follow the catalog: one input image
for the drop zone and the palette picker, as many as any mode takes for the create form.
"""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler
from django.http import HttpResponse
from django.urls import Resolver404, resolve

from studio.gateways import catalog

# Room for the form's other fields and the multipart boundaries around the files.
FORM_ALLOWANCE = 1024 * 1024
ONE_IMAGE = {"create_upload", "create_palette"}
SEVERAL_IMAGES = {"create"}


def body_limit(path):
    """The largest body a request to `path` may have, in bytes."""
    try:
        name = resolve(path).url_name
    except Resolver404:
        name = ""
    if name in ONE_IMAGE:
        return catalog.INPUT_MAX_BYTES + FORM_ALLOWANCE
    if name in SEVERAL_IMAGES:
        return catalog.INPUT_MAX_BYTES * catalog.most_input_images() + FORM_ALLOWANCE
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE + FORM_ALLOWANCE


def too_big(limit):
    megabytes = limit // (1024 * 1024)
    return HttpResponse(
        f"This request is larger than the {megabytes} MB it may be: each image may be at most "
        f"{catalog.INPUT_MAX_BYTES // (1024 * 1024)} MB.",
        status=413,
        content_type="text/plain; charset=utf-8",
    )


class CountingUploadHandler(FileUploadHandler):
    """Counts the bytes of every file part as they are parsed; past the limit, parsing stops."""

    def __init__(self, request, limit):
        super().__init__(request)
        self.limit = limit
        self.seen = 0

    def receive_data_chunk(self, raw_data, start):
        self.seen += len(raw_data)
        if self.seen > self.limit:
            raise RequestDataTooBig(f"more than {self.limit} bytes of files")
        return raw_data  # the next handler stores it

    def file_complete(self, file_size):
        return None


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method in ("POST", "PUT", "PATCH"):
            limit = body_limit(request.path_info)
            try:
                declared = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                declared = 0
            if declared > limit:
                return too_big(limit)
            request.upload_handlers.insert(0, CountingUploadHandler(request, limit))
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, RequestDataTooBig):
            return too_big(body_limit(request.path_info))
        return None
