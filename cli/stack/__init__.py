"""The local stack launcher: Apache Kafka (KRaft) from Maven Central jars and redis-server."""
