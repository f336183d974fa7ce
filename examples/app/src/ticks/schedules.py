"""Beat's schedule for the tick: one send per slot, each send recorded in the database.

A slot is a multiple of TICK_SECONDS since the epoch, so every beat agrees on which slot is
which. The database, not beat's schedule file, says whether a slot has been sent (a BeatFire row):
a beat that starts in the middle of a slot nobody sent yet sends it at once, and one that starts
in a slot already sent waits for the next. So a beat replaced during a version bump neither
skips the slot it was down in nor sends it again, as long as it is down for less than a slot.
Summon runs at most one beat; two at once would both send, and BeatFire would show it.
"""

import logging
import time
from datetime import datetime, timedelta, timezone

from celery import schedules
from celery.signals import after_task_publish
from django.conf import settings
from django.db import DatabaseError, connection

logger = logging.getLogger(__name__)

# The slot that is_due last found due. Beat runs one thread and sends the task right after
# is_due says it is due, so fire() sends the slot that was checked, even across a slot's edge.
_due_slot = None
# Whether this beat has sent any tick yet.
_fired = False


def slot_start(slot):
    return datetime.fromtimestamp(slot * settings.TICK_SECONDS, tz=timezone.utc)


class every_slot(schedules.BaseSchedule):
    def is_due(self, last_run_at):
        global _due_slot
        from ticks.models import BeatFire

        seconds = settings.TICK_SECONDS
        now = time.time()
        slot = int(now // seconds)
        next_in = (slot + 1) * seconds - now
        try:
            sent = BeatFire.objects.filter(slot=slot_start(slot)).exists()
        except DatabaseError:
            logger.exception("can't tell whether slot %s was sent; asking again in a second", slot_start(slot))
            connection.close()
            return schedules.schedstate(False, 1.0)
        _due_slot = None if sent else slot
        if sent and not _fired:
            # A beat that starts in a slot another one sent says so: it is how a test sees
            # that it waited.
            logger.info("slot %s was sent already; the next is due in %.1f s", slot_start(slot).isoformat(), next_in)
        return schedules.schedstate(not sent, next_in)

    def remaining_estimate(self, last_run_at):
        seconds = settings.TICK_SECONDS
        return timedelta(seconds=seconds - time.time() % seconds)

    def __reduce__(self):
        return self.__class__, ()

    def __repr__(self):
        return "<every slot of TICK_SECONDS>"


def fire():
    """Gives the task the slot is_due chose; beat calls it as it sends the task."""
    slot = _due_slot if _due_slot is not None else int(time.time() // settings.TICK_SECONDS)
    return slot_start(slot).isoformat()


@after_task_publish.connect(sender="ticks.tasks.tick")
def record_send(sender=None, body=None, **kwargs):
    """Records the send of a slot's tick once the broker has it, in beat (the one sender).

    After, not before: a beat stopped between recording and sending would leave a slot recorded
    and never sent, which the next beat would skip. Stopped between sending and recording, it
    leaves the slot to be sent again by the next beat; the tick runs once anyway (ticks/tasks.py).
    """
    global _fired
    from ticks.models import BeatFire

    _, task_kwargs, _ = body
    BeatFire.objects.create(slot=task_kwargs["slot"], pod=settings.POD_NAME, version=settings.APP_VERSION)
    _fired = True
