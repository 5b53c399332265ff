"""certbotk8s: ACME certificates for Kubernetes sources, written where the proxy reads them."""

__version__ = "0.1.0"
