"""The configuration: the file's model and parsing, DNS providers, durations."""
