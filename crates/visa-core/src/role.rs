//! Members' roles and what each may do. The whole permission model is the one table in
//! `Role::allows`, so the server's handlers ask one question (`role.allows(permission)`)
//! and the table-driven test in `tests/e2e/members.rs` checks every route against it.

use crate::error::Rejection;
use std::fmt;

/// A member's role in an account, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Owner,
    Admin,
    Developer,
    Viewer,
}

/// Something a session or admin key may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Read keys, usage, balance, executions, members and the audit log.
    Read,
    /// Create, change, rotate and revoke tool keys.
    ManageKeys,
    /// Invite members, change their roles, remove them; mint and revoke admin keys.
    ManageMembers,
    /// Create, change, rotate and delete webhook endpoints, replay and test their events.
    ManageWebhooks,
    /// Grant or take away the owner role; revoke leaked keys across the account by raw value.
    Own,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Owner, Role::Admin, Role::Developer, Role::Viewer];

    pub fn parse(text: &str) -> Result<Self, Rejection> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| Rejection::invalid("role must be owner, admin, developer or viewer"))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    /// The permission table: viewers read; developers also manage keys; admins also manage
    /// members, admin keys and webhooks; owners everything.
    pub fn allows(self, permission: Permission) -> bool {
        let least = match permission {
            Permission::Read => Role::Viewer,
            Permission::ManageKeys => Role::Developer,
            Permission::ManageMembers | Permission::ManageWebhooks => Role::Admin,
            Permission::Own => Role::Owner,
        };
        self <= least
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_has_exactly_its_permissions() {
        use Permission::*;
        let table = [
            (Role::Owner, [true, true, true, true, true]),
            (Role::Admin, [true, true, true, true, false]),
            (Role::Developer, [true, true, false, false, false]),
            (Role::Viewer, [true, false, false, false, false]),
        ];
        for (role, expected) in table {
            let got = [Read, ManageKeys, ManageMembers, ManageWebhooks, Own].map(|p| role.allows(p));
            assert_eq!(got, expected, "{role}");
        }
    }

    #[test]
    fn roles_round_trip_and_reject_unknown_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()).unwrap(), role);
        }
        assert!(Role::parse("root").is_err());
        assert!(Role::parse("Owner").is_err());
    }
}
