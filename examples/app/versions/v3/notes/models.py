"""Notes at v3, the contract step: only `body` is left, and it is required."""

from django.db import models


class Note(models.Model):
    body = models.CharField(max_length=200)
    pod = models.CharField(max_length=253)
    version = models.CharField(max_length=63)
    created = models.DateTimeField(auto_now_add=True)

    @classmethod
    def write(cls, words, pod, version):
        return cls.objects.create(body=words, pod=pod, version=version)

    def read(self):
        return self.body
