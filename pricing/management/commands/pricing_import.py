from datetime import datetime
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from pricing.litellm import PriceMapError, litellm_price_map_parse
from pricing.selectors import PriceChange, price_changes_from_quotes
from pricing.services import price_changes_apply


def _aware(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if timezone.is_naive(moment):
        raise CommandError("--effective-from needs a UTC offset, e.g. 2026-12-01T00:00:00+00:00")
    return moment


def _describe(change: PriceChange) -> str:
    quote = change.quote
    if change.pricing is None:
        return (
            f"+ {quote.model_name} ({quote.provider}): new model, in {quote.input_price_per_million} "
            f"out {quote.output_price_per_million} cached {quote.cached_input_price_per_million} {quote.currency}/1M"
        )
    parts = [f"{field}: {getattr(change.pricing, field)} -> {getattr(quote, field)}" for field in change.changed_fields]
    return f"~ {quote.model_name}: " + "; ".join(parts)


class Command(BaseCommand):
    help = (
        "Import model prices from a local LiteLLM price map (model_prices_and_context_window.json). "
        "Shows the differences; with --apply, puts them in force as new price versions. No network access."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--apply", action="store_true", help="Apply the differences (default: dry run).")
        parser.add_argument("--add-new", action="store_true", help="Also add models aicost does not know yet.")
        parser.add_argument("--model", action="append", default=[], help="Only this model (repeatable).")
        parser.add_argument("--effective-from", type=_aware, help="When the new prices start (default: now).")

    def handle(self, *args, file: Path, apply: bool, add_new: bool, model: list[str], effective_from, **options):
        try:
            quotes = litellm_price_map_parse(text=file.read_text(encoding="utf-8"))
        except (OSError, PriceMapError) as error:
            raise CommandError(f"{file}: {error}") from error
        if model:
            quotes = {name: quote for name, quote in quotes.items() if name in model}
        changes, other_currency = price_changes_from_quotes(quotes=quotes, include_new=add_new)
        for name in other_currency:
            self.stderr.write(f"! {name}: priced in another currency than the map's USD; left as is.")
        for change in changes:
            self.stdout.write(_describe(change))
        if not changes:
            self.stdout.write("No price differences.")
            return
        if not apply:
            self.stdout.write(f"Dry run: {len(changes)} change(s). Run again with --apply to put them in force.")
            return
        try:
            applied = price_changes_apply(
                changes=changes, effective_from=effective_from, source=f"LiteLLM price map {file.name}"
            )
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from error
        self.stdout.write(self.style.SUCCESS(f"Applied {applied} change(s) as new price versions."))
