// A peer for the interop suite (interop/tests/java_client.rs): Apache Kafka's Java client
// against a broker. Compiled with javac against the kafka-clients jars; not part of the build.
//
// usage: java -cp CLASSES:JARS/* InteropClient BOOTSTRAP TOPIC MODE
//   MODE assign: AdminClient creates TOPIC (1 partition), an idempotent producer sends 6 keyed
//                records with headers, AdminClient lists earliest/latest offsets, a consumer
//                reads them back with assign + seek.
//   MODE create: only creates TOPIC (1 partition), for peers that cannot (kcat).
//   MODE group:  AdminClient creates TOPIC (2 partitions), the producer sends 4 keyed records,
//                a consumer in group TOPIC-group subscribes, reads them, commits, and
//                AdminClient lists the group's committed offsets.
// Everything observed is printed as lines starting with a tag (SENT, OFFSETS, RECORD,
// COMMITTED); the Rust test compares them with what it expects. Exit code 0 = done.
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class InteropClient {
  private static byte[] utf8(String s) {
    return s == null ? null : s.getBytes(StandardCharsets.UTF_8);
  }

  private static String str(byte[] b) {
    return b == null ? "(null)" : new String(b, StandardCharsets.UTF_8);
  }

  private static String headers(Iterable<Header> hs) {
    StringBuilder sb = new StringBuilder("[");
    boolean first = true;
    for (Header h : hs) {
      if (!first) sb.append(';');
      first = false;
      sb.append(h.key()).append('=').append(str(h.value()));
    }
    return sb.append(']').toString();
  }

  private static Properties common(String bootstrap) {
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(AdminClientConfig.CLIENT_ID_CONFIG, "interop-java");
    p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
    p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
    // Security settings (security.protocol, ssl.*, sasl.*) from a properties file, if given.
    String extra = System.getenv("KP_JAVA_CLIENT_PROPERTIES");
    if (extra != null && !extra.isEmpty()) {
      try (java.io.FileInputStream in = new java.io.FileInputStream(extra)) {
        p.load(in);
      } catch (java.io.IOException e) {
        throw new java.io.UncheckedIOException(e);
      }
    }
    return p;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: InteropClient BOOTSTRAP TOPIC assign|group|group848|create");
      System.exit(2);
    }
    String bootstrap = args[0];
    String topic = args[1];
    String mode = args[2];
    // group848: the group mode with the consumer group protocol (KIP-848).
    boolean grouped = mode.equals("group") || mode.equals("group848");
    int partitions = grouped ? 2 : 1;
    int count = grouped ? 4 : 6;

    try (Admin admin = Admin.create(common(bootstrap))) {
      admin
          .createTopics(Collections.singleton(new NewTopic(topic, partitions, (short) 1)))
          .all()
          .get();
      System.out.println("CREATED " + topic + " partitions=" + partitions);
    }
    if (mode.equals("create")) {
      System.out.println("DONE");
      return;
    }

    Properties pp = common(bootstrap);
    pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
    pp.put(ProducerConfig.ACKS_CONFIG, "all");
    pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
    pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
    pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(pp)) {
      List<java.util.concurrent.Future<RecordMetadata>> sent = new ArrayList<>();
      for (int i = 0; i < count; i++) {
        RecordHeaders hs = new RecordHeaders();
        hs.add("trace", utf8("t" + i));
        hs.add("dup", utf8("a"));
        hs.add("dup", utf8("b"));
        if (i % 2 == 1) hs.add("empty", null);
        // group mode: records with a partition chosen by the Java partitioner (murmur2)
        sent.add(
            producer.send(
                new ProducerRecord<>(topic, null, utf8("key-" + i), utf8("value-" + i), hs)));
      }
      producer.flush();
      for (int i = 0; i < count; i++) {
        RecordMetadata md = sent.get(i).get();
        System.out.println("SENT key-" + i + " p=" + md.partition() + " o=" + md.offset());
      }
    }

    if (mode.equals("assign")) {
      TopicPartition tp = new TopicPartition(topic, 0);
      try (Admin admin = Admin.create(common(bootstrap))) {
        ListOffsetsResult earliest = admin.listOffsets(Map.of(tp, OffsetSpec.earliest()));
        ListOffsetsResult latest = admin.listOffsets(Map.of(tp, OffsetSpec.latest()));
        System.out.println(
            "OFFSETS earliest="
                + earliest.partitionResult(tp).get().offset()
                + " latest="
                + latest.partitionResult(tp).get().offset());
      }
      Properties cp = common(bootstrap);
      cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
      cp.put(
          ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
      cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
      try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
        consumer.assign(List.of(tp));
        // Skip the first record: seek must position exactly.
        consumer.seek(tp, 1);
        List<ConsumerRecord<byte[], byte[]>> got = poll(consumer, count - 1);
        for (ConsumerRecord<byte[], byte[]> r : got) printRecord(r);
      }
    } else {
      Properties cp = common(bootstrap);
      cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
      cp.put(
          ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
      cp.put(ConsumerConfig.GROUP_ID_CONFIG, topic + "-group");
      cp.put(
          ConsumerConfig.GROUP_PROTOCOL_CONFIG, mode.equals("group848") ? "consumer" : "classic");
      cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
      cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
      try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
        consumer.subscribe(List.of(topic));
        List<ConsumerRecord<byte[], byte[]>> got = poll(consumer, count);
        // Print in (partition, offset) order: the order across partitions is not defined.
        got.sort((a, b) -> a.partition() != b.partition()
            ? Integer.compare(a.partition(), b.partition())
            : Long.compare(a.offset(), b.offset()));
        for (ConsumerRecord<byte[], byte[]> r : got) printRecord(r);
        consumer.commitSync();
        // While the member is in the group: the AdminClient lists and describes it.
        describeGroup(bootstrap, topic + "-group");
      }
      try (Admin admin = Admin.create(common(bootstrap))) {
        Map<TopicPartition, OffsetAndMetadata> committed =
            admin.listConsumerGroupOffsets(topic + "-group").partitionsToOffsetAndMetadata().get();
        Map<Integer, Long> byPartition = new TreeMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : committed.entrySet()) {
          if (e.getValue() != null) byPartition.put(e.getKey().partition(), e.getValue().offset());
        }
        for (Map.Entry<Integer, Long> e : byPartition.entrySet()) {
          System.out.println("COMMITTED p=" + e.getKey() + " o=" + e.getValue());
        }
      }
    }
    System.out.println("DONE");
  }

  /** Prints what the AdminClient's listGroups and describeConsumerGroups say of `group`. */
  private static void describeGroup(String bootstrap, String group) throws Exception {
    try (Admin admin = Admin.create(common(bootstrap))) {
      for (GroupListing g : admin.listGroups().all().get()) {
        if (!g.groupId().equals(group)) continue;
        System.out.println(
            "LISTED type="
                + g.type().map(Object::toString).orElse("?")
                + " protocol="
                + g.protocol()
                + " state="
                + g.groupState().map(Object::toString).orElse("?"));
      }
      ConsumerGroupDescription d =
          admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get();
      StringBuilder members = new StringBuilder();
      for (MemberDescription m : d.members()) {
        List<Integer> ps = new ArrayList<>();
        for (TopicPartition tp : m.assignment().topicPartitions()) ps.add(tp.partition());
        Collections.sort(ps);
        members.append(" member client=" + m.clientId() + " host=" + m.host() + " partitions=" + ps);
      }
      System.out.println(
          "DESCRIBED type="
              + d.type()
              + " state="
              + d.groupState()
              + " assignor="
              + d.partitionAssignor()
              + members);
      String unknown = group + "-unknown";
      try {
        ConsumerGroupDescription u =
            admin.describeConsumerGroups(List.of(unknown)).describedGroups().get(unknown).get();
        System.out.println("DESCRIBED-UNKNOWN state=" + u.groupState());
      } catch (java.util.concurrent.ExecutionException e) {
        System.out.println("DESCRIBED-UNKNOWN error=" + e.getCause().getClass().getSimpleName());
      }
    }
  }

  private static List<ConsumerRecord<byte[], byte[]>> poll(
      KafkaConsumer<byte[], byte[]> consumer, int want) {
    List<ConsumerRecord<byte[], byte[]>> got = new ArrayList<>();
    long deadline = System.currentTimeMillis() + 60_000;
    while (got.size() < want && System.currentTimeMillis() < deadline) {
      for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) got.add(r);
    }
    if (got.size() != want) {
      System.out.println("TIMEOUT got=" + got.size() + " want=" + want);
    }
    return got;
  }

  private static void printRecord(ConsumerRecord<byte[], byte[]> r) {
    System.out.println(
        "RECORD p="
            + r.partition()
            + " o="
            + r.offset()
            + " k="
            + str(r.key())
            + " v="
            + str(r.value())
            + " h="
            + headers(r.headers()));
  }
}
