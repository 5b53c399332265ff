"""Adapters: the only code that talks to Kubernetes, ACME CAs, DNS servers and HTTP."""
