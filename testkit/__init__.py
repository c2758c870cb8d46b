"""The test authority: real parts and signed material for tests and `make demo`.

Not shipped in the wheel. Keyless minting lives only here; signing with keys
(which the gate itself needs) lives in ``gate.signing``.
"""
