//! [`MemoryStore`]'s PlanStore: plans in a map.

use super::*;

impl PlanStore for MemoryStore {
    async fn upsert_plan(&self, plan: &Plan) -> StoreResult<()> {
        self.lock().plans.insert(plan.slug.clone(), plan.clone());
        Ok(())
    }

    async fn plan(&self, slug: &str) -> StoreResult<Option<Plan>> {
        Ok(self.lock().plans.get(slug).cloned())
    }
}
