"""Talking to Kubernetes: client, informers, sources, Secrets, Events, Lease, stores."""
