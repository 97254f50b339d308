//! Real-tool acceptance tests (being written).
