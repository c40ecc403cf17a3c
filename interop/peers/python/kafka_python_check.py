"""A peer for interop/tests/python_clients.rs: kafka-python (pure Python) against a broker.

usage: python kafka_python_check.py BOOTSTRAP TOPIC

KafkaAdminClient creates TOPIC (1 partition); KafkaProducer (acks=all, enable_idempotence=True) sends 5 keyed records
with headers; KafkaConsumer lists offsets (beginning_offsets / end_offsets) and reads the
records back with assign + seek_to_beginning. Everything observed is printed as tagged lines
(SENT, OFFSETS, RECORD, DONE) that the Rust test compares with what it expects.
"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

COUNT = 5


def text(b):
    return "(null)" if b is None else b.decode("utf-8")


def fmt_headers(hs):
    return "[" + ";".join(f"{k}={text(v)}" for k, v in (hs or [])) + "]"


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="interop-kafka-python",
                             request_timeout_ms=30000)
    admin.create_topics([NewTopic(name=topic, num_partitions=1, replication_factor=1)])
    admin.close()
    print(f"CREATED {topic}", flush=True)

    producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="interop-kafka-python",
                             acks="all", linger_ms=5,
                             enable_idempotence=True)
    futures = []
    for i in range(COUNT):
        headers = [("trace", f"t{i}".encode()), ("dup", b"a"), ("dup", b"b")]
        if i % 2 == 1:
            # kafka-python refuses a None header value; an empty one is sent instead.
            headers.append(("empty", b""))
        futures.append(producer.send(topic, key=f"key-{i}".encode(),
                                     value=f"value-{i}".encode(), headers=headers, partition=0))
    producer.flush(30)
    for i, fut in enumerate(futures):
        md = fut.get(timeout=30)
        print(f"SENT key-{i} p={md.partition} o={md.offset}", flush=True)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="interop-kafka-python",
                             enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    low = consumer.beginning_offsets([tp])[tp]
    high = consumer.end_offsets([tp])[tp]
    print(f"OFFSETS earliest={low} latest={high}", flush=True)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = []
    deadline = time.monotonic() + 60
    while len(got) < COUNT and time.monotonic() < deadline:
        for _, msgs in consumer.poll(timeout_ms=500).items():
            got.extend(msgs)
    for m in got:
        print(f"RECORD p={m.partition} o={m.offset} k={text(m.key)} v={text(m.value)} "
              f"h={fmt_headers(m.headers)}", flush=True)
    if len(got) != COUNT:
        print(f"TIMEOUT got={len(got)} want={COUNT}", flush=True)
    consumer.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
