"""The I/O side: everything that runs a process or reads the network for evidence.

Evidence verifiers in :mod:`gate.evidence` stay pure; the modules here fetch the
bytes they check (Git objects, registry blobs, trust roots) with bounded time and size.
"""
