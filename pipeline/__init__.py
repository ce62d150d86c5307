"""Top floor: configuration, command line, sources, graph building, supervision and metrics."""
