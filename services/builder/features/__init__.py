"""The deployment server's configuration features, applied to an SDI's files (pure)."""
