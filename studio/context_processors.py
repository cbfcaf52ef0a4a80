from studio import ledger


def header(request):
    """This month's spend for the header, for logged-in pages."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {"header_spend": ledger.month_spend(user), "header_remaining": ledger.remaining(user)}
