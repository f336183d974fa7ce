from django.urls import path

from summon_platform import views

urlpatterns = [
    path("", views.index),
    path("healthz/", views.healthz),
    path("probe/", views.probe),
]
