"""runserver that refuses a broken schema (aicost listed before whitenoise so this command wins)."""

from whitenoise.runserver_nostatic.management.commands.runserver import Command as WhitenoiseRunserver

from schemaguard.startup import schema_guard_or_exit


class Command(WhitenoiseRunserver):
    def handle(self, *args, **options):
        schema_guard_or_exit()
        super().handle(*args, **options)
