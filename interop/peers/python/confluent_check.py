"""A peer for interop/tests/python_clients.rs: confluent-kafka (librdkafka) against a broker.

usage: python confluent_check.py BOOTSTRAP TOPIC

AdminClient creates TOPIC (1 partition); an idempotent producer (enable.idempotence=true)
sends 5 keyed records with headers; the consumer reads the watermarks and then the records
back with assign from offset 0. Everything observed is printed as tagged lines (SENT,
OFFSETS, RECORD, DONE) that the Rust test compares with what it expects.
"""
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

COUNT = 5


def text(b):
    return "(null)" if b is None else b.decode("utf-8")


def fmt_headers(hs):
    return "[" + ";".join(f"{k}={text(v)}" for k, v in (hs or [])) + "]"


def main():
    bootstrap, topic = sys.argv[1], sys.argv[2]
    admin = AdminClient({"bootstrap.servers": bootstrap, "client.id": "interop-confluent"})
    for _, fut in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).items():
        fut.result(timeout=30)
    print(f"CREATED {topic}", flush=True)

    producer = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": "interop-confluent",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
    })
    reports = []

    def on_delivery(err, msg):
        if err is not None:
            reports.append(f"FAILED {text(msg.key())} {err}")
        else:
            reports.append(f"SENT {text(msg.key())} p={msg.partition()} o={msg.offset()}")

    for i in range(COUNT):
        headers = [("trace", f"t{i}".encode()), ("dup", b"a"), ("dup", b"b")]
        if i % 2 == 1:
            headers.append(("empty", None))
        producer.produce(topic, key=f"key-{i}".encode(), value=f"value-{i}".encode(),
                         headers=headers, partition=0, on_delivery=on_delivery)
    left = producer.flush(30)
    if left:
        print(f"UNDELIVERED {left}", flush=True)
    for line in reports:
        print(line, flush=True)

    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "client.id": "interop-confluent",
        "group.id": f"{topic}-unused",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
    print(f"OFFSETS earliest={low} latest={high}", flush=True)
    consumer.assign([TopicPartition(topic, 0, 0)])
    got = []
    deadline = time.monotonic() + 60
    while len(got) < COUNT and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            print(f"ERROR {msg.error()}", flush=True)
            continue
        got.append(msg)
    for m in got:
        print(f"RECORD p={m.partition()} o={m.offset()} k={text(m.key())} v={text(m.value())} "
              f"h={fmt_headers(m.headers())}", flush=True)
    if len(got) != COUNT:
        print(f"TIMEOUT got={len(got)} want={COUNT}", flush=True)
    consumer.close()
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
