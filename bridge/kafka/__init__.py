"""The one seam to Kafka: the only package that imports confluent_kafka.

protocols.py   what the rest of the bridge needs: Source, Producer, Admin, RangeReader, and
               the plain values that cross the seam (Record, Range, Batch, TopicState)
properties.py  librdkafka properties for each kind of client (defaults, forced safety settings)
source.py      the live consumer on its own thread (Source)
producer.py    acknowledged writes (Producer): the DLQ, redrive markers
admin.py       topic metadata and creation, group inspection (Admin)
groups.py      a group's committed offsets, members and assignment; partitions' offset ranges
ranges.py      bounded reads of offset ranges (RangeReader): replay, the DLQ tools
ledger.py      the sent-email ledger's compacted topic
memory.py      an in-memory broker implementing the protocols, for tests

Errors of the client come out as bridge.errors.BrokerError.
"""
