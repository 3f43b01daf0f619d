"""The knowledge base (T3): parse, chunk, index and search plant documents; cite answers."""
