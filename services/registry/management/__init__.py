"""The management API ``/api/v1``: JSON resources for spaces and the feed view."""
