"""Keys, CSRs and certificates read defensively."""
