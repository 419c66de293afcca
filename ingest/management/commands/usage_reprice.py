"""python manage.py usage_reprice --model M --since T [--until T] [--apply] [--backdate] [--actor NAME]"""

import getpass
from datetime import datetime, time
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from core.money import money_display
from ingest.services import usage_reprice_evaluated
from usage.services import REPRICE_CHUNK, RepriceInvalid, RepriceOutcome


def _moment(value: str, option: str) -> datetime:
    """An ISO 8601 datetime (without an offset: in TIME_ZONE) or a date (its midnight in TIME_ZONE)."""
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            moment = None if day is None else datetime.combine(day, time.min)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"{option} must be a date (2026-11-01) or an ISO 8601 datetime, not {value!r}.")
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def _shown(amount: Decimal | None) -> str:
    """A total as shown (core.money.money_display: 8 places), in plain notation."""
    return f"{money_display(amount or Decimal(0)):f}"


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # No name for this uid (a container).
        return "unknown"


class Command(BaseCommand):
    help = (
        "Price a model's stored calls in [--since, --until) again, each at its own moment with today's prices "
        "(after a price was fixed, or added for calls stored as unpriced: an unpriced call whose name as sent is "
        "now priced as the model counts). Provider-reported costs stay. Without --apply it prints, per model and "
        "local day, the calls and the old and new totals per currency, and changes nothing. --apply updates the "
        "log, the rollups, the counters and the budget alerts by the difference, in transactions of "
        f"{REPRICE_CHUNK} calls; rerun the same command after an interruption and it continues where it stopped. "
        "--backdate first puts the model's current price in force from --since (the price was wrong since then) "
        "and reprices everything from --since to now with it, in one transaction. Every run is recorded "
        "(admin: usage reprice runs), and each changed call keeps its history."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="The priced model's name.")
        parser.add_argument("--since", required=True, help="Start (inclusive): a date or an ISO 8601 datetime.")
        parser.add_argument("--until", help="End (exclusive; default now).")
        parser.add_argument("--apply", action="store_true", help="Write the new costs (default: a dry run).")
        parser.add_argument(
            "--backdate", action="store_true", help="Put the model's current price in force from --since first."
        )
        parser.add_argument("--actor", help="Who runs it, for the run's record (default: the OS user).")
        parser.add_argument("--chunk-size", type=int, default=REPRICE_CHUNK, help="Calls per transaction.")

    def handle(self, *args, model: str, since: str, until: str | None, apply: bool, backdate: bool, **options):
        try:
            outcome = usage_reprice_evaluated(
                model_name=model,
                since=_moment(since, "--since"),
                until=None if until is None else _moment(until, "--until"),
                apply=apply,
                backdate=backdate,
                actor=options.get("actor") or _actor(),
                chunk_size=options["chunk_size"],
            )
        except RepriceInvalid as error:
            raise CommandError(str(error)) from None
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None
        self._report(outcome, apply=apply)

    def _report(self, outcome: RepriceOutcome, *, apply: bool) -> None:
        run = outcome.run
        if outcome.resumed:
            self.stdout.write(
                f"Continuing run {run.pk} (started {run.started_at:%Y-%m-%d %H:%M:%S}, until {run.until.isoformat()}) "
                "from its cursor."
            )
        for day in outcome.days:
            parts = [
                f"{currency} {_shown(day.old.get(currency))} -> {_shown(day.new.get(currency))}"
                for currency in day.currencies()
            ]
            self.stdout.write(
                f"{day.model_name}  {day.day}  {day.calls} calls, {day.changed} changed  {'; '.join(parts)}"
            )
        delta = "; ".join(f"{currency} {money_display(Decimal(amount)):+f}" for currency, amount in run.delta.items())
        verb = "changed" if apply else "would change"
        self.stdout.write(
            f"Run {run.pk} ({run.get_status_display()}): {run.calls_seen} calls, {run.calls_changed} {verb}"
            f"{', delta ' + delta if delta else ''}; price versions {run.version_ids or 'none'}."
        )
        if not apply:
            self.stdout.write("Dry run: nothing changed. Add --apply to write it.")
