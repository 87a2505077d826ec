"""OCI Distribution endpoints, one module per resource."""
