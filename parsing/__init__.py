"""The parsing core: result types, the event schema and its encoding (and, later, the parsers)."""
