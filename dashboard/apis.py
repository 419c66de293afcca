"""GET /metrics: the Prometheus exposition."""

from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework.authentication import SessionAuthentication
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.views import APIView

from core.api.authentication import MetricsTokenAuthentication
from core.api.permissions import HasMetricsToken
from dashboard.metrics import metrics_exposition
from usage.authentication import ApiKeyAuthentication
from usage.permissions import CanReadStats


class IgnoreAcceptNegotiation(BaseContentNegotiation):
    """The scrape chooses its own format from Accept; errors are always JSON. Never a 406."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class MetricsApi(APIView):
    """GET /metrics: Prometheus exposition (text or OpenMetrics, as the scraper asks).

    For a staff login, an API key with read scope, or `Authorization: Bearer $AICOST_METRICS_TOKEN`
    (the scraper's way: it needs no database, so the scrape answers during an outage too)."""

    authentication_classes = [MetricsTokenAuthentication, ApiKeyAuthentication, SessionAuthentication]
    permission_classes = [HasMetricsToken | CanReadStats]
    content_negotiation_class = IgnoreAcceptNegotiation

    @extend_schema(exclude=True)  # Not part of the JSON API; documented in the README.
    def get(self, request):
        body, content_type = metrics_exposition(accept=request.headers.get("Accept"))
        return HttpResponse(body, content_type=content_type)
