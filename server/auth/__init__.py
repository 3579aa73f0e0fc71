"""Who is calling: identities, API keys, passwords, login cookies, the binding rule, revocation."""
