from django.conf import settings


def organization(request) -> dict:
    """The organisation's name and realm, shown on every page."""
    return {"organization_name": settings.ORGANIZATION_NAME, "realm": settings.REALM}
