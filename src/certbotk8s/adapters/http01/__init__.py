"""HTTP-01: the token responder, its limits, and the routing objects that reach it."""
