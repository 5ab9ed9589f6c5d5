//! Stripe: [`StripeBillingDriver`] reports overage as Billing Meter events or invoice items;
//! [`CustomerLookup`] says which customer pays.

mod customer;
mod driver;

pub use customer::{CUSTOMER_ID_META_KEY, CustomerLookup, MetaCustomerLookup};
pub use driver::{
    MeterValue, STRIPE_API_BASE, StripeBillingDriver, StripeDriverBuilder, StripeMode,
};
