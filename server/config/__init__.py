"""Settings: typed, loaded from file, environment and `--set`; live in one `LiveConfig`; hot reload."""
