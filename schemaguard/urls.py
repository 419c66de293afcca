from django.urls import path

from schemaguard.apis import DatabaseHealthApi, healthz, readyz

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("api/v1/admin/health/database", DatabaseHealthApi.as_view(), name="health-database"),
]
