from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from studio import operations


@login_not_required  # load balancers have no session
@require_GET
def healthz(request):
    """For load balancers and monitors: 200 when the database, the broker and at least one worker
    cluster are alive; 503 otherwise, the JSON body saying which part is not."""
    found = operations.health()
    return JsonResponse(found, status=200 if found["ok"] else 503)
