"""The HTTP edge: routes beside the socket, security headers and host/origin checks, request rates."""
