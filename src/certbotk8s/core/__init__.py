"""The pure core: frozen data and functions over it. No network, no clocks, no Kubernetes."""
