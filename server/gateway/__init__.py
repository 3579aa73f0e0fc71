"""The socket edge: a frame comes in here, is checked and decoded, and goes to its handler."""
