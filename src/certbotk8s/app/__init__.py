"""Application services: wire the pure core to the adapters. Both CLI modes run these."""
