from datetime import datetime
from decimal import Decimal
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pricing.litellm import PriceMapError, litellm_price_map_parse
from pricing.selectors import TIER_PRICE_FIELDS, PriceChange, price_changes_from_quotes
from pricing.services import price_changes_apply


def _aware(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if timezone.is_naive(moment):
        raise CommandError(_("--effective-from needs a UTC offset, e.g. 2026-12-01T00:00:00+00:00"))
    return moment


_SHORT = {
    "input_price_per_million": gettext_lazy("in"),
    "cached_input_price_per_million": gettext_lazy("cached"),
    "cache_write_5m_price_per_million": gettext_lazy("write 5m"),
    "cache_write_1h_price_per_million": gettext_lazy("write 1h"),
    "input_audio_price_per_million": gettext_lazy("audio in"),
    "output_price_per_million": gettext_lazy("out"),
    "reasoning_price_per_million": gettext_lazy("reasoning"),
    "output_audio_price_per_million": gettext_lazy("audio out"),
    "output_image_price_per_million": gettext_lazy("image out"),
    "price_per_call": gettext_lazy("per call"),
}


def _plain(amount: Decimal | None) -> str:
    """A price as published: 2.5, not 2.500000000000000000 or 2.5E+0."""
    if amount is None:
        return "-"
    return f"{amount.normalize():f}" if amount != amount.to_integral_value() else f"{amount.quantize(Decimal(1)):f}"


def _prices(holder, names) -> str:
    shown = [f"{_SHORT[name]} {_plain(getattr(holder, name))}" for name in names if getattr(holder, name) is not None]
    return ", ".join(shown)


def _tiers(tiers) -> str:
    shown = [
        _("above %(tokens)s: %(prices)s")
        % {"tokens": tier.above_prompt_tokens, "prices": _prices(tier, TIER_PRICE_FIELDS)}
        for tier in tiers
    ]
    return "; ".join(shown) or _("none")


def _describe(change: PriceChange) -> str:
    quote = change.quote
    if change.pricing is None:
        prices = _prices(quote, TIER_PRICE_FIELDS)
        line = _("+ %(model)s (%(provider)s): new model, %(prices)s %(currency)s/1M") % {
            "model": quote.model_name,
            "provider": quote.provider,
            "prices": prices,
            "currency": quote.currency,
        }
        if quote.price_per_call is not None:
            line += _("; %(fee)s %(currency)s per call") % {
                "fee": _plain(quote.price_per_call),
                "currency": quote.currency,
            }
        return line + (_("; tiers %(tiers)s") % {"tiers": _tiers(quote.tiers)} if quote.tiers else "")
    parts = [
        f"{field}: {_plain(getattr(change.pricing, field))} -> {_plain(getattr(quote, field))}"
        for field in change.changed_fields
        if field != "tiers"
    ]
    if "tiers" in change.changed_fields:
        parts.append(_("tiers: now %(tiers)s") % {"tiers": _tiers(quote.tiers)})
    return f"~ {quote.model_name}: " + "; ".join(parts)


class Command(BaseCommand):
    help = (
        "Import model prices from a local LiteLLM price map (model_prices_and_context_window.json). "
        "Lists the map's prices that aicost does not hold (with the number of models publishing each), then "
        "the differences; with --apply, puts them in force as new price versions. No network access."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--apply", action="store_true", help="Apply the differences (default: dry run).")
        parser.add_argument("--add-new", action="store_true", help="Also add models aicost does not know yet.")
        parser.add_argument("--model", action="append", default=[], help="Only this model (repeatable).")
        parser.add_argument("--effective-from", type=_aware, help="When the new prices start (default: now).")

    def handle(self, *args, file: Path, apply: bool, add_new: bool, model: list[str], effective_from, **options):
        try:
            quotes, report = litellm_price_map_parse(text=file.read_text(encoding="utf-8"), model_names=model or None)
        except (OSError, PriceMapError) as error:
            raise CommandError(f"{file}: {error}") from error
        if report.dropped_fields or report.skipped_models:
            self.stdout.write(
                _(
                    "%(count)s model(s) with token prices. Not imported, prices aicost does not hold "
                    "(field: models publishing it):"
                )
                % {"count": len(quotes)}
            )
            for line in report.lines():
                self.stdout.write(line)
        changes, other_currency = price_changes_from_quotes(quotes=quotes, include_new=add_new)
        for name in other_currency:
            self.stderr.write(
                _("! %(model)s: priced in another currency than the map's USD; left as is.") % {"model": name}
            )
        for change in changes:
            self.stdout.write(_describe(change))
        if not changes:
            self.stdout.write(_("No price differences."))
            return
        if not apply:
            self.stdout.write(
                _("Dry run: %(count)s change(s). Run again with --apply to put them in force.")
                % {"count": len(changes)}
            )
            return
        try:
            applied = price_changes_apply(
                changes=changes, effective_from=effective_from, source=f"LiteLLM price map {file.name}"
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        self.stdout.write(
            self.style.SUCCESS(_("Applied %(count)s change(s) as new price versions.") % {"count": applied})
        )
