"""Health of the services orders need (CA, DNS, resolver, API server): gates and probes."""
