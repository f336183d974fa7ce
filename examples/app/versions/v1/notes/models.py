"""Notes at v1: the note's words are in `text`."""

from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=200)
    pod = models.CharField(max_length=253)
    version = models.CharField(max_length=63)
    created = models.DateTimeField(auto_now_add=True)

    @classmethod
    def write(cls, words, pod, version):
        return cls.objects.create(text=words, pod=pod, version=version)

    def read(self):
        return self.text
