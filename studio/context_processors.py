from functools import cache

from studio import ledger


def header(request):
    """This month's spend for the header. Lazy: htmx fragments, which show no header, never
    pay for the queries."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "header_spend": cache(lambda: ledger.month_spend(user)),
        "header_remaining": cache(lambda: ledger.remaining(user)),
    }
