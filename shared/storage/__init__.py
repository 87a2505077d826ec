"""Blob storage: one port, a filesystem driver and an S3 driver."""
