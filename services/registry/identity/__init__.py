"""Who is calling and what they may do: passwords, API keys, tokens, roles per space."""
