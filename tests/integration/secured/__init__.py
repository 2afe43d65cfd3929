"""Tests against the secured broker, the three-node cluster and the TLS Redis."""
