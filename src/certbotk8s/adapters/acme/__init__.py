"""Talking to ACME CAs: the engine (orders, ARI) and its network layer."""
