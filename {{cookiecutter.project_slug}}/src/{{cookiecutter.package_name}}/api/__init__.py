"""HTTP routes. Each goes through ``services.streams``, never through fastrtc's internals."""
