"""Services the routes and the UI use."""
