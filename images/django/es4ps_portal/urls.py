from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from es4ps_portal.web.forms import AdminLoginForm

admin.site.site_header = format_lazy(_("{organization} accounts"), organization=settings.ORGANIZATION_NAME)
admin.site.site_title = admin.site.site_header
admin.site.index_title = format_lazy(_("Realm {realm}"), realm=settings.REALM)
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("es4ps_portal.web.urls")),
]
