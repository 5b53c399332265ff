"""The settings of each DNS-01 provider type, one module per type (registered in
core.config.dns_providers; the provider itself is the module of the same name in adapters/dns)."""
