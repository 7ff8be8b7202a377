"""The portal's URLs: the admin (django-otp's site: a verified second factor or no entry) and the pages."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django_otp.admin import OTPAdminSite

from es4ps_portal.web.admin_door import ADMIN_PATH
from es4ps_portal.web.staff_sign_in import AdminLoginForm

# django-otp's documented way to guard the default site (and every model registered with it).
admin.site.__class__ = OTPAdminSite
admin.site.site_header = format_lazy(_("{organization} accounts"), organization=settings.ORGANIZATION_NAME)
admin.site.site_title = admin.site.site_header
admin.site.index_title = format_lazy(_("Realm {realm}"), realm=settings.REALM)
admin.site.login_form = AdminLoginForm
admin.site.site_url = f"{settings.PORTAL_BASE_URL}/"

urlpatterns = [
    path(ADMIN_PATH.lstrip("/"), admin.site.urls),
    path("", include("es4ps_portal.web.urls")),
]
