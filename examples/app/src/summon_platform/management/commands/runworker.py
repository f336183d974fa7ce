"""Channels' runworker, stopping on SIGTERM.

The channel worker runs `python manage.py runworker` as its container's PID 1, and PID 1 gets no
signal it has no handler for: Channels' worker installs none for SIGTERM, so the kubelet's TERM
would be ignored and the pod would wait out its whole grace period. It stops as on Ctrl-C instead.
"""

import signal

from channels.management.commands.runworker import Command as RunWorker


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(RunWorker):
    def handle(self, *args, **options):
        signal.signal(signal.SIGTERM, _interrupt)
        return super().handle(*args, **options)
