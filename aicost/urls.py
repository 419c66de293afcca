from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from core.api.docs import ApiDocsView

urlpatterns = [
    path("", include("schemaguard.urls")),
    path("", include("dashboard.urls")),
    path("api/v1/", include("ingest.urls")),
    path("api/v1/", include("usage.urls")),
    path("api/v1/", include("alerts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
