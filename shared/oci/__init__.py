"""Pure OCI Distribution primitives: no I/O, no framework imports."""
