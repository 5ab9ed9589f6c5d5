//! The store conformance suite, run on [`MemoryStore`].

use ai_metering_core::store::MemoryStore;

ai_metering_testkit::store_conformance_tests!(async { MemoryStore::new() });
