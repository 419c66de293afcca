from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from core.api.docs import ApiDocsView
from ingest.otlp_apis import OtlpTracesApi

urlpatterns = [
    path("", include("schemaguard.urls")),
    path("", include("dashboard.urls")),
    path("api/v1/", include("ingest.urls")),
    # OTLP/HTTP: exporters post to <endpoint>/v1/traces, exactly this path.
    path("v1/traces", OtlpTracesApi.as_view(), name="otlp-traces"),
    path("api/v1/", include("usage.urls")),
    path("api/v1/", include("alerts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
