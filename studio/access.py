"""Who may see what: login everywhere but a few public views, and owner-only objects.

Django's LoginRequiredMiddleware sends anonymous visitors to LOGIN_URL unless a view is marked
@login_not_required. The marked ones: the login page, the simulator (gateways bring their own
bearer key), share pages and signed upload URLs (the token is the check), /healthz, and the
admin (below). tests/test_access.py fails when any other view is public.
"""

from django.contrib.auth.decorators import login_not_required
from django.shortcuts import get_object_or_404
from django.urls import URLResolver

# The largest value a (big) integer id column holds.
MAX_ID = 2**63 - 1


def with_own_login(urls):
    """`admin.site.urls` with every view marked @login_not_required.

    Django marks only the admin's login view; the others would send visitors to our LOGIN_URL.
    They check staff status themselves and send anyone else to the admin's own login page.
    """
    mark_login_not_required(urls[0])
    return urls


def mark_login_not_required(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            mark_login_not_required(pattern.url_patterns)
        elif getattr(pattern.callback, "login_required", True):
            login_not_required(pattern.callback)


def get_owned_or_404(queryset, user, **lookup):
    """The object if `user` owns it (staff may see everyone's); 404 otherwise, never 403,
    so ids of other people's work reveal nothing."""
    if not user.is_staff:
        queryset = queryset.filter(owner=user)
    return get_object_or_404(queryset, **lookup)


def get_own_or_404(queryset, user, **lookup):
    """The object if `user` owns it; 404 otherwise, for staff too.

    For every view that changes something: staff may look at anyone's work, but acting on it
    (a retry, say) would act, and charge, in the owner's name.
    """
    return get_object_or_404(queryset.filter(owner=user), **lookup)


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
