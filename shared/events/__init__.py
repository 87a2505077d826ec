"""Events: CloudEvents envelopes, the MongoDB outbox, its relay, and the buses it publishes to."""
