// Creates ACLs on a running broker with the Java Admin client (the broker jars have no
// kafka-acls tool). Run with the single-file source launcher:
//   java -cp "$KAFKA_LIBS/*" CreateAcls.java BOOTSTRAP PRINCIPAL:OPERATION:TOPIC...
// OPERATION is an AclOperation name (ALL, READ, WRITE, CREATE, DESCRIBE, ...); TOPIC "*" is
// every topic; "group=NAME" names a consumer group instead ("group=*": every group). Talks PLAINTEXT to BOOTSTRAP (the broker's internal listener).
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.common.acl.AccessControlEntry;
import org.apache.kafka.common.acl.AclBinding;
import org.apache.kafka.common.acl.AclOperation;
import org.apache.kafka.common.acl.AclPermissionType;
import org.apache.kafka.common.resource.PatternType;
import org.apache.kafka.common.resource.ResourcePattern;
import org.apache.kafka.common.resource.ResourceType;

public class CreateAcls {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", args[0]);
        List<AclBinding> acls = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            int last = args[i].lastIndexOf(':');
            int middle = args[i].lastIndexOf(':', last - 1);
            String principal = args[i].substring(0, middle);
            AclOperation op = AclOperation.fromString(args[i].substring(middle + 1, last));
            String resource = args[i].substring(last + 1);
            ResourceType type = ResourceType.TOPIC;
            if (resource.startsWith("group=")) {
                type = ResourceType.GROUP;
                resource = resource.substring("group=".length());
            }
            acls.add(new AclBinding(
                new ResourcePattern(type, resource, PatternType.LITERAL),
                new AccessControlEntry(principal, "*", op, AclPermissionType.ALLOW)));
        }
        try (Admin admin = Admin.create(props)) {
            admin.createAcls(acls).all().get();
        }
        System.out.println("created " + acls.size() + " ACL(s)");
    }
}
