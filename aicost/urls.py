from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from aicost.api.docs import ApiDocsView
from aicost.apis import DatabaseHealthApi, MetricsApi, healthz, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", MetricsApi.as_view(), name="metrics"),
    path("api/v1/admin/health/database", DatabaseHealthApi.as_view(), name="health-database"),
    path("api/v1/", include("usage.urls")),
    path("api/v1/", include("alerts.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]
