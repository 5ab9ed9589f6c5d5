//! The store conformance suite and the money-path scenarios, run on [`MemoryStore`].

use ai_metering_core::store::MemoryStore;

ai_metering_testkit::store_conformance_tests!(async { MemoryStore::new() });
ai_metering_testkit::money_path_tests!(async { MemoryStore::new() });
