import secrets


def uid(request) -> str:
    """A stable anonymous id for this browser (kept in the signed session cookie)."""
    value = request.session.get("uid")
    if not value:
        value = request.session["uid"] = secrets.token_hex(8)
    return value
