"""Input and output serializers of the agents API, one module per resource."""
