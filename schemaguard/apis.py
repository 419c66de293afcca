"""Operations endpoints of the schema guard: liveness, readiness and the database schema report."""

from django.http import JsonResponse
from django.views.decorators.http import require_GET
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.responses import ErrorSerializer, error_body
from core.db_routers import replica_lag
from schemaguard.guard import SchemaReport, schema_health, schema_report


@require_GET
def healthz(request):
    """Liveness: the process answers. Touches no database, so a database outage never restarts pods."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    """Readiness: 503 while the schema is unhealthy or the database unreachable (cached a few seconds).
    Warnings (e.g. aicost.W012, the usage log disagreeing with its rollups) keep it ready and are listed
    by id; the health API has their messages (the probe is public, the amounts are not)."""
    health = schema_health()
    if health.healthy:
        return JsonResponse(
            {"status": "ready", "warnings": health.warnings} if health.warnings else {"status": "ready"}
        )
    body = {"status": "unready", "missing_tables": health.missing_tables, "findings": health.findings}
    return JsonResponse(body, status=503)


def _report_data(report: SchemaReport) -> dict:
    return {
        "healthy": report.healthy,
        "latency_ms": None if report.latency_ms is None else round(report.latency_ms, 2),
        "tables": [
            {"table": t.table, "model": t.model, "exists": t.exists, "missing_columns": t.missing_columns}
            for t in report.tables
        ],
        "missing_tables": report.missing_tables,
        "pending_migrations": report.pending_migrations,
        "findings": [
            {"id": f.id, "level": "error" if f.is_serious() else "warning", "message": f.msg, "hint": f.hint}
            for f in report.findings
        ],
        "repair_command": report.repair_command,
        "replica": replica_lag(),
    }


class DatabaseHealthApi(APIView):
    """GET /api/v1/admin/health/database: 200 when the schema matches the models, 503 when not."""

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "DatabaseHealth"

        class TableSerializer(serializers.Serializer):
            class Meta:
                ref_name = "DatabaseHealthTable"

            table = serializers.CharField()
            model = serializers.CharField()
            exists = serializers.BooleanField()
            missing_columns = serializers.ListField(child=serializers.CharField())

        class FindingSerializer(serializers.Serializer):
            class Meta:
                ref_name = "DatabaseHealthFinding"

            id = serializers.CharField()
            level = serializers.ChoiceField(choices=["error", "warning"], help_text="Errors make the schema unhealthy.")
            message = serializers.CharField()
            hint = serializers.CharField(allow_null=True)

        healthy = serializers.BooleanField()
        latency_ms = serializers.FloatField(allow_null=True)
        tables = TableSerializer(many=True)
        missing_tables = serializers.ListField(child=serializers.CharField())
        pending_migrations = serializers.ListField(child=serializers.CharField())
        findings = FindingSerializer(many=True)
        repair_command = serializers.CharField()

        class ReplicaSerializer(serializers.Serializer):
            class Meta:
                ref_name = "DatabaseHealthReplica"

            up = serializers.BooleanField(help_text="The replica answered.")
            in_recovery = serializers.BooleanField(allow_null=True, help_text="False once promoted.")
            lag_seconds = serializers.FloatField(allow_null=True, help_text="Age of the last replayed transaction.")
            lag_bytes = serializers.IntegerField(allow_null=True, help_text="WAL not yet replayed on the replica.")

        replica = ReplicaSerializer(allow_null=True, help_text="Null when no DATABASE_REPLICA_URL is set.")

    @extend_schema(
        responses={
            200: inline_serializer(
                name="DatabaseHealthResponse",
                fields={"success": serializers.BooleanField(), "data": OutputSerializer()},
            ),
            503: inline_serializer(
                name="DatabaseUnhealthyResponse",
                fields={"success": serializers.BooleanField(), "error": ErrorSerializer(), "data": OutputSerializer()},
            ),
        },
        description="200 when healthy; 503 with the same data and an error when not.",
    )
    def get(self, request):
        report = schema_report()
        data = self.OutputSerializer(_report_data(report)).data
        if report.healthy:
            return Response({"success": True, "data": data})
        body = error_body(code="schema_unhealthy", message=report.errors[0].msg)
        body["data"] = data
        return Response(body, status=status.HTTP_503_SERVICE_UNAVAILABLE)
