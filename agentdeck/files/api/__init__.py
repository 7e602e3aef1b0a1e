"""The files domain's HTTP layer: views and serializers (URLs in agentdeck.files.urls)."""
