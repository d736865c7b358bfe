"""Webhook routes; everything under /signalwire/ is validated by swsync's middleware."""

from django.urls import path

from . import views

urlpatterns = [
    path("signalwire/sms", views.sms),
    path("signalwire/status", views.status),
]
