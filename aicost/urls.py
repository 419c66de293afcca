from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("api/v1/", include("usage.urls")),
    path("api/v1/", include("alerts.urls")),
    path("admin/", admin.site.urls),
]
