"""Response headers Django has no setting for, and what server-error log lines carry.

The Content-Security-Policy comes from django-csp (CONTENT_SECURITY_POLICY in settings.py); the
rest of the security headers from Django's SecurityMiddleware.
"""

import logging

from django.conf import settings


class PermissionsPolicyMiddleware:
    """Denies every page the browser features listed in STUDIO_PERMISSIONS_POLICY_DENY."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.header = ", ".join(f"{feature}=()" for feature in settings.STUDIO_PERMISSIONS_POLICY_DENY)

    def __call__(self, request):
        response = self.get_response(request)
        response.setdefault("Permissions-Policy", self.header)
        return response


class RequestContextFilter(logging.Filter):
    """Puts the request's path and user id on a log record (`-` when there is none).

    django.request passes the request in the record's extra. Only the path and the user's id are
    taken: never the query string, headers, cookies or POST data, which may carry secrets.
    """

    def filter(self, record):
        request = getattr(record, "request", None)
        record.path = getattr(request, "path", "-") or "-"
        try:
            record.user_id = getattr(getattr(request, "user", None), "pk", None) or "-"
        except Exception:  # the error being logged may be the database itself: never fail the log line
            record.user_id = "-"
        return True
