# kafka.mk: a real single-node Apache Kafka broker (KRaft, no Docker) for
# development and integration tests. The jars are cached under
# $(CACHE)/kafka/<version>/libs and the data under $(CACHE)/kafka-data/<port>,
# never in the repo. KAFKA_PORT (default 9092) and KAFKA_VERSION (default
# 4.1.1) pass through the environment to scripts/kafka.sh.
.PHONY: kafka-fetch kafka-up kafka-down kafka-status

# kafka-fetch: download the Kafka jars with Maven, once.
kafka-fetch:
	@scripts/kafka.sh fetch

# kafka-up: start the broker on 127.0.0.1:$${KAFKA_PORT:-9092} and wait until it answers.
kafka-up:
	@scripts/kafka.sh up

# kafka-down: stop the broker, keeping its data (make kafka-down WIPE=1 deletes it).
kafka-down:
	@scripts/kafka.sh down $(if $(WIPE),--wipe)

# kafka-status: say whether the broker runs.
kafka-status:
	@scripts/kafka.sh status

.PHONY: kafka-cluster-up kafka-cluster-down kafka-cluster-status

# kafka-cluster-up: start a three-node KRaft cluster (each node broker and
# controller) on 127.0.0.1:$${KAFKA_CLUSTER_PORT:-29092} and the two ports
# after it (controllers 100 above), replication factor 3, min.insync.replicas=2;
# data under $(CACHE)/kafka-cluster/<port>/node<i>.
kafka-cluster-up:
	@scripts/kafka.sh cluster-up

# kafka-cluster-down: stop the three nodes, keeping their data (WIPE=1 deletes it).
kafka-cluster-down:
	@scripts/kafka.sh cluster-down $(if $(WIPE),--wipe)

# kafka-cluster-status: say which of the three nodes run.
kafka-cluster-status:
	@scripts/kafka.sh cluster-status
