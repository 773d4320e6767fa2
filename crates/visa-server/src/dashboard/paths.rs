//! The paths of the dashboard's pages that the navigation bar (`layout`) and the pages
//! themselves both name, so that neither imports the other.

pub const OVERVIEW: &str = "/dashboard/overview";
pub const KEYS: &str = "/dashboard/keys";
pub const SPEND: &str = "/dashboard/spend";
pub const AUDIT: &str = "/dashboard/audit";
pub const MEMBERS: &str = "/dashboard/members";
pub const ADMIN_KEYS: &str = "/dashboard/admin-keys";
pub const CONNECTED: &str = "/dashboard/connected";
pub const WEBHOOKS: &str = "/dashboard/webhooks";
