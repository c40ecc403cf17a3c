"""A peer for interop/tests/python_clients.rs: confluent-kafka (librdkafka) transactions.

usage: python confluent_txn.py produce BOOTSTRAP TOPIC TRANSACTIONAL_ID
       python confluent_txn.py consume BOOTSTRAP TOPIC

produce: a transactional producer sends py-aborted-0..2 to partition 0 and aborts, then
py-committed-0..2 and commits; prints ABORTED / COMMITTED / DONE.
consume: a read_committed consumer (assign, from the beginning) reads partition 0 up to its
end and prints RECORD <value> for each record, then DONE.
"""
import sys

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

COUNT = 3


def produce(bootstrap, topic, tid):
    p = Producer({
        "bootstrap.servers": bootstrap,
        "client.id": "interop-confluent-txn",
        "transactional.id": tid,
        "transaction.timeout.ms": 60000,
    })
    p.init_transactions(30)
    p.begin_transaction()
    for i in range(COUNT):
        p.produce(topic, value=f"py-aborted-{i}".encode(), partition=0)
    p.flush(30)
    p.abort_transaction(30)
    print("ABORTED", flush=True)
    p.begin_transaction()
    for i in range(COUNT):
        p.produce(topic, value=f"py-committed-{i}".encode(), partition=0)
    p.commit_transaction(30)
    print("COMMITTED", flush=True)
    print("DONE", flush=True)


def consume(bootstrap, topic):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"interop-txn-{topic}",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
    })
    c.assign([TopicPartition(topic, 0, 0)])
    polls = 0
    while polls < 600:
        polls += 1
        m = c.poll(0.1)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                break
            print(f"ERROR {m.error()}", flush=True)
            continue
        print(f"RECORD {m.value().decode()}", flush=True)
    else:
        print("TIMEOUT", flush=True)
    c.close()
    print("DONE", flush=True)


def main():
    mode = sys.argv[1]
    if mode == "produce":
        produce(sys.argv[2], sys.argv[3], sys.argv[4])
    elif mode == "consume":
        consume(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
