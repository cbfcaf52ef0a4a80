"""Who may see what: login everywhere but a few public paths, and owner-only objects."""

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import get_object_or_404

# Paths reachable without logging in. The simulator stands in for outside gateways, which
# authenticate with their own bearer key; public share pages and signed upload URLs carry
# their own token; static files are public anyway.
PUBLIC_PREFIXES = ("/accounts/login/", "/sim/", "/s/", "/public/", "/static/", "/healthz")
# The largest value a (big) integer id column holds.
MAX_ID = 2**63 - 1


class LoginRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.user.is_authenticated and not request.path.startswith(PUBLIC_PREFIXES):
            if request.path.startswith("/admin/"):
                return self.get_response(request)  # the admin has its own login page
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return self.get_response(request)


def get_owned_or_404(queryset, user, **lookup):
    """The object if `user` owns it (staff may see everyone's); 404 otherwise, never 403,
    so ids of other people's work reveal nothing."""
    if not user.is_staff:
        queryset = queryset.filter(owner=user)
    return get_object_or_404(queryset, **lookup)


def to_id(text):
    """An object id from a query string or form value, or None when it is not one.

    str.isdigit() is not enough: "²" passes it but int() refuses it, and a 30-digit number
    overflows the database's integer; either must read as "no such id", not end in a 500.
    """
    text = str(text or "")
    if not (text.isascii() and text.isdigit()):
        return None
    value = int(text)
    return value if 0 < value <= MAX_ID else None
