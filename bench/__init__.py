"""swsync benchmarks (scripts, not tests): ``python -m bench.relay``, ``python -m bench.rest``."""
