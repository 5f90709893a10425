"""Chaos suite: a seeded history, bridges in one group under a seeded fault schedule, an oracle.

Modules: history (events and the expected Meisa state), schedule (the seeded faults and the
profiles), cluster (the bridge processes and the broker's restarts), kafka_io (topics, producing,
offsets, the DLQ), runner (`python -m chaos`), check (`python -m chaos.check`, the oracle).
"""
