"""Stream handlers: what the app does with each connection's media."""
