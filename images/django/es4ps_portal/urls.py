from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from es4ps_portal.accounts.forms import AdminLoginForm

admin.site.site_header = f"{settings.ORGANIZATION_NAME} accounts"
admin.site.site_title = f"{settings.ORGANIZATION_NAME} accounts"
admin.site.index_title = f"Realm {settings.REALM}"
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("es4ps_portal.provisioning.urls")),
    path("", include("es4ps_portal.accounts.urls")),
]
