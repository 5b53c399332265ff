"""Sources -> desired certificates: discovery, annotations, host names, ownership."""
