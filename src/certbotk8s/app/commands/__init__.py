"""One-shot CLI commands: renew/revoke one certificate, status, shell completion."""
