"""What beat and the Celery workers did, one row per event, so that a test counts it in SQL.

Slots are the multiples of TICK_SECONDS since the epoch (ticks/schedules.py). For each slot:
- BeatFire: one row each time a beat sent the slot's tick. Two rows for a slot: a double fire.
- TickAttempt: one row each time a worker started the slot's tick. Two rows: a double fire or a
  redelivery (a worker that died with the task in hand; the task is acknowledged late).
- Tick: the slot's one completed run. The unique slot makes a second run an IntegrityError,
  counted on its attempt (duplicate), so a double fire can't go unseen and can't run twice.
A BeatFire with no Tick is a tick that was sent and lost.
"""

from django.db import models


class BeatFire(models.Model):
    slot = models.DateTimeField(db_index=True)
    fired_at = models.DateTimeField(auto_now_add=True)
    pod = models.CharField(max_length=253)
    version = models.CharField(max_length=63)


class TickAttempt(models.Model):
    slot = models.DateTimeField(db_index=True)
    task_id = models.CharField(max_length=64)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True)
    duplicate = models.BooleanField(default=False)
    pod = models.CharField(max_length=253)
    version = models.CharField(max_length=63)


class Tick(models.Model):
    slot = models.DateTimeField(unique=True)
    task_id = models.CharField(max_length=64)
    finished_at = models.DateTimeField(auto_now_add=True)
    pod = models.CharField(max_length=253)
    version = models.CharField(max_length=63)
