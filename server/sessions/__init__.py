"""Sessions that outlive sockets, their registry, and who hears which events (fan-out)."""
