// A consumer-group member of Apache Kafka's Java client, for the mixed-group interop test
// (interop/tests/java_group.rs): subscribes to TOPIC in GROUP with group.protocol=PROTOCOL
// (classic or consumer), prints "RECORD p=<partition> o=<offset>" for every record it gets,
// commits synchronously after every poll and, in the rebalance listener, before a revocation
// completes; once STOPFILE exists it closes (leaving the group) and prints "DONE".
//
// usage: GroupMember BOOTSTRAP TOPIC GROUP PROTOCOL STOPFILE

import java.io.File;
import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class GroupMember {
  private GroupMember() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 5) {
      System.err.println("usage: GroupMember BOOTSTRAP TOPIC GROUP PROTOCOL STOPFILE");
      System.exit(2);
    }
    String bootstrap = args[0];
    String topic = args[1];
    String group = args[2];
    String protocol = args[3];
    File stop = new File(args[4]);
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ConsumerConfig.CLIENT_ID_CONFIG, "interop-java-member");
    p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
    p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "50");
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    if (protocol.equals("classic")) {
      // The classic protocol's member-side timeouts (the consumer protocol takes the broker's).
      p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
      p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "200");
    }
    try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
      consumer.subscribe(
          List.of(topic),
          new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
              Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
              for (TopicPartition tp : partitions) {
                offsets.put(tp, new OffsetAndMetadata(consumer.position(tp)));
              }
              consumer.commitSync(offsets);
              System.out.println("REVOKED " + partitions.size());
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
              System.out.println("ASSIGNED " + partitions.size());
            }
          });
      while (!stop.exists()) {
        int n = 0;
        for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
          System.out.println("RECORD p=" + r.partition() + " o=" + r.offset());
          n++;
        }
        if (n > 0) {
          try {
            consumer.commitSync();
          } catch (KafkaException e) {
            // A rebalance under way: the revocation commits these positions.
            System.out.println("COMMIT-FAILED " + e.getClass().getSimpleName());
          }
        }
      }
    }
    System.out.println("DONE");
  }
}
