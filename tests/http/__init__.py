"""The HTTP edge: error shape, body limits."""
