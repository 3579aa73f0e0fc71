"""The PostgreSQL store (asyncpg): the `Store` protocol for several processes sharing data."""
