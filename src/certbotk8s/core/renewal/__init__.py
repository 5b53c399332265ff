"""When a certificate renews or waits, and why: the pure decisions both modes ask."""
