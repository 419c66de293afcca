from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = _("Alerts")

    def ready(self) -> None:
        from django.core.checks import register

        from alerts.checks import check_alert_channels, check_alert_thresholds
        from alerts.config import alert_settings_validate

        register(check_alert_thresholds)
        register(check_alert_channels)
        alert_settings_validate()
