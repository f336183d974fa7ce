import logging
import time
from datetime import datetime

from celery import shared_task
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from ticks.models import Tick, TickAttempt

logger = logging.getLogger(__name__)


@shared_task(bind=True)
def tick(self, slot):
    """Runs the slot's tick: at most one completes per slot (ticks/models.py)."""
    slot = datetime.fromisoformat(slot)
    me = {"pod": settings.POD_NAME, "version": settings.APP_VERSION}
    attempt = TickAttempt.objects.create(slot=slot, task_id=self.request.id, **me)
    # Work that takes a while, so that a worker told to stop has a tick in hand.
    time.sleep(settings.TICK_WORK_SECONDS)
    try:
        with transaction.atomic():
            Tick.objects.create(slot=slot, task_id=self.request.id, **me)
    except IntegrityError:
        attempt.duplicate = True
        logger.warning("tick for slot %s already ran: a double fire or a redelivery", slot)
    attempt.finished_at = timezone.now()
    attempt.save(update_fields=["duplicate", "finished_at"])
    return slot.isoformat()
