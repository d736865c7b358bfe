"""A Django project answering SignalWire messaging webhooks with swsync.django."""
