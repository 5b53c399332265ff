"""DNS-01: one module per provider family behind one registry, and the propagation check."""
