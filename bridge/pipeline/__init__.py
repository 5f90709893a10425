"""The live path: `meisa-bridge run`, Kafka -> decode -> map -> Meisa -> commit.

runner.py      the command: start-up checks, wiring, signals, exit codes
pipeline.py    the consume loop, dead-lettering and rebalances, on a bridge.kafka Source
message.py     a message in flight and how it failed
dispatcher.py  key-ordered concurrent delivery (coalesce.py merges waiting upserts and folds
               add_tags into them; bulk.py sends enrolments to one sequence together)
guards.py      max_age and suppression checks before each send
offsets.py     per-partition tracking of finished messages
commit.py      commits of the contiguous finished prefix
finished.py    the offsets finished past it, as the commit's metadata
"""
