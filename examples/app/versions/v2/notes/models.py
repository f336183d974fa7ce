"""Notes at v2, the expand step: the words move from `text` to `body`.

v2's code reads and writes only `body`; the database keeps `text` in step for the v1 pods that
still serve while v2 rolls out (migration 0002). v2 can't write `text` itself: v3's migration
drops it while v2's pods still serve, and an INSERT that names a dropped column fails.
"""

from django.db import models


class Note(models.Model):
    body = models.CharField(max_length=200, null=True)
    pod = models.CharField(max_length=253)
    version = models.CharField(max_length=63)
    created = models.DateTimeField(auto_now_add=True)

    @classmethod
    def write(cls, words, pod, version):
        return cls.objects.create(body=words, pod=pod, version=version)

    def read(self):
        return self.body
