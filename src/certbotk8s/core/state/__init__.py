"""What is known about each certificate: records, Secret metadata, in-flight orders."""
