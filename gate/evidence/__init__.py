"""Pure verifiers: bytes and trust anchors in, findings or exceptions out; no network I/O."""
