from django.core.management.base import BaseCommand

from aicost.demo import demo_staff_login_ensure, demo_usage_load


class Command(BaseCommand):
    help = "Load demo usage (once) and create the demo staff login, printing its password."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=90)
        parser.add_argument("--calls-per-day", type=int, default=300)

    def handle(self, *args, days: int, calls_per_day: int, **options):
        loaded = demo_usage_load(days=days, calls_per_day=calls_per_day)
        if loaded:
            self.stdout.write(f"Loaded {loaded} demo calls over {days} days.")
        else:
            self.stdout.write("Usage data present; no demo data loaded.")
        username, password = demo_staff_login_ensure()
        self.stdout.write(self.style.SUCCESS(f"Staff login: {username} / {password}  (http://127.0.0.1:8000/admin/)"))
