"""The operations API both front ends call: lifecycle, pre-flight, rollback, node operations."""
