"""The accounts domain's HTTP layer: views and serializers (URLs in agentdeck.accounts.urls)."""
