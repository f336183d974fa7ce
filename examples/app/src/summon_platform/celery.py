"""The Celery app: `celery --app=summon_platform worker` and `... beat` (docs/app-image.md)."""

import os

from celery import Celery
from celery.beat import BeatLazyFunc

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "summon_platform.settings")

from ticks.schedules import every_slot, fire  # noqa: E402 (needs DJANGO_SETTINGS_MODULE)

app = Celery("summon_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# One tick per slot of TICK_SECONDS. Beat chooses the slot, sends it with the task, and records
# the send (ticks/schedules.py).
app.conf.beat_schedule = {
    "tick": {
        "task": "ticks.tasks.tick",
        "schedule": every_slot(),
        "kwargs": {"slot": BeatLazyFunc(fire)},
    },
}
