"""The credits domain's HTTP layer: views and serializers (URLs in agentdeck.credits.urls)."""
