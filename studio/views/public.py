from django.contrib.auth.decorators import login_not_required
from django.core import signing
from django.http import FileResponse, Http404
from django.views.decorators.http import require_GET

from studio import media
from studio.models import Upload


@login_not_required  # fetched by gateways; the signed token is the access check
@require_GET
def upload(request, token):
    """An input image for a gateway that only takes URLs. The signed token names the upload
    and expires; nothing else is reachable this way."""
    try:
        upload_id = media.upload_id_from_token(token)
    except signing.BadSignature:
        raise Http404("This link is invalid or has expired.") from None
    found = Upload.objects.filter(pk=upload_id).first()
    if found is None:
        raise Http404("No such upload.")
    response = FileResponse(found.file.open("rb"), content_type=found.mime)
    response["Cache-Control"] = "private, max-age=600"
    response["X-Content-Type-Options"] = "nosniff"
    return response
