//! The command line, declared with clap. Amounts are in dollars here (`--daily-cap 5` is
//! $5.00); the API speaks cents.

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "visa-cli", version, about = "Visa Keys: scoped API keys that spend a prepaid balance on paid tools")]
pub struct Cli {
    /// Print the server's raw JSON response instead of a readable view.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (SQLite in --data-dir by default).
    Serve(ServeArgs),
    /// Sign in and store the session token in the user's config dir.
    Login(LoginArgs),
    /// Say who the current session (or admin key in VISA_SESSION_TOKEN) is.
    Whoami,
    /// End the stored session on the server and forget it here.
    Logout,
    /// List and end sessions: your own, or (owners and admins) another member's.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Change your password; every other session of yours ends.
    Password {
        /// Read the current and the new password from standard input, one per line.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Create, list, inspect, update, rotate and revoke tool keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Admin keys: account credentials for automation (never execute tools).
    #[command(subcommand, name = "admin-keys")]
    AdminKeys(AdminKeysCommand),
    /// Members of the account and their roles (owner, admin, developer, viewer).
    #[command(subcommand)]
    Members(MembersCommand),
    /// Webhook endpoints: signed events (low balance, caps, keys) sent to your HTTPS URL.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// The account's audit log: who changed what, from where.
    Audit(AuditArgs),
    /// List the tool catalog with prices.
    Tools,
    /// Show the account's balance (session, or a key in VISA_API_KEY).
    Balance,
    /// Spend over time: calls, charges and refusals per day (or hour), by key, tool or end user.
    Spend(SpendArgs),
    /// Show what the key in VISA_API_KEY may still spend now, and which limit bounds it.
    Budget {
        /// For this end user of the key (its spend under the key's caps on each end user).
        #[arg(long)]
        end_user: Option<String>,
    },
    /// List, show and (as the operator) reconcile paid executions.
    #[command(subcommand)]
    Executions(ExecutionsCommand),
    /// Check the ledger of a data dir.
    #[command(subcommand)]
    Ledger(LedgerCommand),
    /// Copy a data dir's database to FILE, safely while the server runs (SQLite online backup).
    Backup {
        #[command(flatten)]
        database: DatabaseArgs,
        /// A new file to write the copy to (mode 0600).
        file: PathBuf,
    },
    /// Operator commands (need the operator token).
    #[command(subcommand)]
    Operator(OperatorCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file holding any of these settings, keyed by flag name (`listen = "0.0.0.0:8080"`);
    /// flags and environment variables override it.
    #[arg(long, env = "VISA_CONFIG_FILE", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "VISA_LISTEN")]
    pub listen: SocketAddr,
    /// Where the SQLite database and the generated operator token live.
    #[arg(long, default_value = "./visa-data", env = "VISA_DATA_DIR")]
    pub data_dir: PathBuf,
    /// A PostgreSQL database that several nodes share (`postgres://user:pass@host/db?sslmode=verify-full`)
    /// instead of the data dir's SQLite file; needs VISA_OPERATOR_TOKEN, the same on every node.
    #[arg(long = "database", value_name = "URL", env = "VISA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// How many PostgreSQL connections this node may hold (its share of max_connections).
    #[arg(long, default_value_t = visa_store::postgres::DEFAULT_POOL_SIZE, env = "VISA_DATABASE_POOL_SIZE")]
    pub database_pool_size: usize,
    /// `production` (live keys, real charges) or `preview` (test keys, sandboxed and free).
    #[arg(long, default_value = "production", env = "VISA_ENVIRONMENT")]
    pub environment: String,
    /// A TOML tool catalog (see docs/tools.md); the built-in catalog when omitted.
    #[arg(long, env = "VISA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Key brand, the first part of every key (`<brand>_live_...`).
    #[arg(long, default_value = "VisaKey", env = "VISA_KEY_BRAND")]
    pub brand: String,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); SIGHUP reloads both files.
    #[arg(long, requires = "tls_key", env = "VISA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", env = "VISA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// A reverse proxy whose X-Forwarded-For / X-Forwarded-Proto are believed (repeatable).
    #[arg(long = "trusted-proxy", value_name = "CIDR", env = "VISA_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Private addresses webhooks may reach, over plain HTTP too (repeatable; e.g. 127.0.0.0/8
    /// for a receiver on this machine). Everything else is refused unless public and HTTPS.
    #[arg(
        long = "webhook-allow-private",
        value_name = "CIDR",
        env = "VISA_WEBHOOK_ALLOW_PRIVATE",
        value_delimiter = ','
    )]
    pub webhook_allow_private: Vec<ipnet::IpNet>,
    /// Networks that may use plain HTTP (repeatable; default loopback). Everyone else needs
    /// HTTPS, directly or through a trusted proxy.
    #[arg(long = "local-network", value_name = "CIDR", env = "VISA_LOCAL_NETWORKS", value_delimiter = ',')]
    pub local_networks: Vec<ipnet::IpNet>,
    /// The most connections open at once; beyond it new connections are closed at once.
    /// Default: the open-file limit (raised to its hard limit at start) less 256.
    #[arg(long, env = "VISA_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// The most connections open at once from one source IP (trusted proxies are exempt).
    /// Default: a quarter of the connection cap, at least 64.
    #[arg(long, env = "VISA_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// How long an Idempotency-Key is remembered, e.g. 24h, 7d.
    #[arg(long, default_value = "24h", env = "VISA_IDEMPOTENCY_TTL", value_parser = parse_duration_seconds)]
    pub idempotency_ttl: u64,
    /// How long this node's lease lasts, e.g. 30s: renewed every third of it; when it runs out
    /// (the node crashed or stalled), another node turns its calls in flight into
    /// `reconcile_required`. At least 3s.
    #[arg(long, default_value = "30s", env = "VISA_NODE_LEASE", value_parser = parse_duration_seconds)]
    pub node_lease: u64,
    /// How long usage is kept per minute before it is rolled up per hour, e.g. 7d.
    #[arg(long, default_value = "7d", env = "VISA_USAGE_MINUTE_RETENTION", value_parser = parse_duration_seconds)]
    pub usage_minute_retention: u64,
    /// How long usage is kept per hour before it is rolled up per day, e.g. 90d.
    #[arg(long, default_value = "90d", env = "VISA_USAGE_HOUR_RETENTION", value_parser = parse_duration_seconds)]
    pub usage_hour_retention: u64,
    /// How long webhook delivery attempts (and delivered events) are kept, e.g. 30d.
    #[arg(long, default_value = "30d", env = "VISA_WEBHOOK_LOG_RETENTION", value_parser = parse_duration_seconds)]
    pub webhook_log_retention: u64,
    /// Sign-ins (and invitation acceptances) a minute from one client IP, with a burst of two
    /// thirds of it; raise it for many people behind one NAT.
    #[arg(long, default_value_t = 30, env = "VISA_SIGN_INS_PER_IP", value_parser = clap::value_parser!(u32).range(1..))]
    pub sign_ins_per_ip: u32,
    /// Sign-ins a minute for one login, with a burst of half of it (password guessing).
    #[arg(long, default_value_t = 10, env = "VISA_SIGN_INS_PER_LOGIN", value_parser = clap::value_parser!(u32).range(1..))]
    pub sign_ins_per_login: u32,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The account's login.
    pub login: String,
    /// Read the password from standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Your live sessions (or a member's): where and when each was opened.
    List {
        /// Another member's sessions (owners and admins).
        #[arg(long)]
        member: Option<i64>,
    },
    /// End one of your sessions by id.
    Revoke { id: i64 },
    /// End every session of a member (yours but the current one, if it is you).
    RevokeAll {
        #[arg(long)]
        member: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key; prints the raw key once.
    Create(CreateKeyArgs),
    /// List keys, newest first.
    List(ListKeysArgs),
    /// Show one key.
    Get { id: i64 },
    /// Change a key's label, tools, caps, CIDRs, expiry or read-only flag.
    Update(UpdateKeyArgs),
    /// Mint a new secret for a key; prints it once.
    Rotate {
        id: i64,
        /// How long the old secret keeps working, e.g. 30s, 10m, 2h, 1d (default: it stops now).
        #[arg(long, value_parser = parse_duration_seconds)]
        grace: Option<u64>,
    },
    /// Revoke a key: it stops working at once.
    Revoke { id: i64 },
    /// Traffic per secret over the last 24 hours: a sparkline of requests and the totals
    /// (with a session, or with the key itself in VISA_API_KEY).
    Usage {
        id: i64,
        /// Bucket size: minute, hour (default) or day.
        #[arg(long, default_value = "hour")]
        granularity: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateKeyArgs {
    pub label: String,
    /// Comma-separated tool ids or aliases; omit for all supported tools.
    #[arg(long, value_delimiter = ',')]
    pub tools: Option<Vec<String>>,
    /// Daily cap in dollars (default $10).
    #[arg(long)]
    pub daily_cap: Option<String>,
    /// Cumulative cap in dollars (default: none).
    #[arg(long)]
    pub total_cap: Option<String>,
    /// Allowed source network (repeatable).
    #[arg(long = "cidr")]
    pub cidrs: Vec<String>,
    /// Expiry, RFC 3339 with a timezone.
    #[arg(long)]
    pub expires: Option<String>,
    /// The key may read but never execute.
    #[arg(long)]
    pub read_only: bool,
    /// Requests per second (and burst) the key may send (default 100).
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// `optional`: the OpenAI-compatible surface takes calls without an Idempotency-Key (for
    /// frameworks that cannot set a header per call; their retries may then be charged twice).
    #[arg(long, value_parser = ["required", "optional"])]
    pub idempotency: Option<String>,
    /// The percent of a cap whose passing sends the `key.cap.threshold` webhook (1 to 100,
    /// default 80).
    #[arg(long)]
    pub cap_alert_percent: Option<u8>,
    /// `required`: every paid call must name its end user (X-Visa-End-User, OpenAI's `user`).
    #[arg(long, value_parser = ["required", "optional"])]
    pub end_user: Option<String>,
    /// What each end user of the key may spend per UTC day, in dollars (default: no such cap).
    #[arg(long)]
    pub end_user_daily_cap: Option<String>,
    /// What each end user of the key may spend in total, in dollars (default: no such cap).
    #[arg(long)]
    pub end_user_total_cap: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListKeysArgs {
    #[arg(long)]
    pub limit: Option<u32>,
    #[arg(long)]
    pub starting_after: Option<i64>,
    #[arg(long)]
    pub ending_before: Option<i64>,
}

#[derive(Debug, Args)]
pub struct UpdateKeyArgs {
    pub id: i64,
    #[arg(long)]
    pub label: Option<String>,
    /// Comma-separated tool ids or aliases (the scope becomes restricted).
    #[arg(long, value_delimiter = ',')]
    pub tools: Option<Vec<String>>,
    /// Allow every supported tool.
    #[arg(long, conflicts_with = "tools")]
    pub all_tools: bool,
    #[arg(long)]
    pub daily_cap: Option<String>,
    /// Cumulative cap in dollars, or `none` to remove it.
    #[arg(long)]
    pub total_cap: Option<String>,
    /// Replace the allowed networks (repeatable).
    #[arg(long = "cidr")]
    pub cidrs: Vec<String>,
    /// Allow every source network again.
    #[arg(long, conflicts_with = "cidrs")]
    pub any_cidr: bool,
    /// RFC 3339 expiry, or `never`.
    #[arg(long)]
    pub expires: Option<String>,
    #[arg(long)]
    pub read_only: Option<bool>,
    /// Requests per second (and burst) the key may send.
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Whether the OpenAI-compatible surface requires an Idempotency-Key from this key.
    #[arg(long, value_parser = ["required", "optional"])]
    pub idempotency: Option<String>,
    /// The percent of a cap whose passing sends the `key.cap.threshold` webhook (1 to 100).
    #[arg(long)]
    pub cap_alert_percent: Option<u8>,
    /// `required`: every paid call must name its end user (X-Visa-End-User, OpenAI's `user`).
    #[arg(long, value_parser = ["required", "optional"])]
    pub end_user: Option<String>,
    /// What each end user may spend per UTC day, in dollars, or `none` to remove the cap.
    #[arg(long)]
    pub end_user_daily_cap: Option<String>,
    /// What each end user may spend in total, in dollars, or `none` to remove the cap.
    #[arg(long)]
    pub end_user_total_cap: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum AdminKeysCommand {
    /// Create an admin key; prints it once.
    Create { label: String },
    /// List admin keys.
    List,
    /// Revoke an admin key.
    Revoke { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Register an endpoint; prints its signing secret once.
    Create {
        url: String,
        /// An event type to send (repeatable), or `*` for all (the default).
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// List the account's endpoints.
    List,
    /// Show one endpoint.
    Get { id: i64 },
    /// Change an endpoint's URL, events, description, or turn it off and on.
    Update {
        id: i64,
        #[arg(long)]
        url: Option<String>,
        /// Replaces the event types (repeatable).
        #[arg(long = "event", value_name = "TYPE")]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
    },
    /// Delete an endpoint.
    Delete { id: i64 },
    /// A new signing secret, printed once; the old one keeps signing for 24 hours.
    RotateSecret { id: i64 },
    /// The endpoint's last delivery attempts.
    Deliveries { id: i64 },
    /// Send one event again (--event-id), or every failed delivery since a time (--since).
    Replay {
        id: i64,
        #[arg(long, required_unless_present = "since", conflicts_with = "since")]
        event_id: Option<String>,
        /// RFC 3339, e.g. 2026-12-01T00:00:00Z.
        #[arg(long)]
        since: Option<String>,
    },
    /// Send the endpoint a `webhook.test` event.
    Test { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum MembersCommand {
    /// List members with their roles.
    List,
    /// Invite a login with a role; prints the one-time invitation token to hand over.
    Add {
        login: String,
        /// owner, admin, developer or viewer.
        #[arg(long)]
        role: String,
    },
    /// Change a member's role.
    Role {
        /// The member id (see `members list`).
        id: i64,
        /// owner, admin, developer or viewer.
        role: String,
    },
    /// Remove a member; its sessions end at once.
    Remove { id: i64 },
    /// Accept an invitation: set a password and sign in (the session is stored like `login`).
    Accept {
        /// The invitation token (or set VISA_INVITE_TOKEN, which keeps it out of shell history).
        #[arg(env = "VISA_INVITE_TOKEN", hide_env_values = true)]
        token: String,
        /// Read the new password from standard input instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this action, e.g. key.revoked or member.role_changed.
    #[arg(long)]
    pub action: Option<String>,
    /// Only this target, e.g. key:12 or member:3.
    #[arg(long)]
    pub target: Option<String>,
    /// Only entries at or after this RFC 3339 time.
    #[arg(long)]
    pub since: Option<String>,
    /// How many of the newest entries to show first (1 to 100).
    #[arg(long, default_value_t = 25)]
    pub limit: u32,
    /// Keep running and print new entries as they are written (polls every second).
    #[arg(long)]
    pub follow: bool,
}

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Manage accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Create an account; prints its first session token.
    Create {
        login: String,
        /// Approve the account so its keys can execute tools.
        #[arg(long)]
        approve: bool,
        /// Opening credit in dollars.
        #[arg(long)]
        credit: Option<String>,
        /// Read a password (for `visa-cli login`) from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Approve (or with --revoke, unapprove) an account.
    Approve {
        login: String,
        #[arg(long)]
        revoke: bool,
    },
    /// Add prepaid credit, in dollars.
    Credit { login: String, amount: String },
}

#[derive(Debug, Subcommand)]
pub enum ExecutionsCommand {
    /// List executions, newest first.
    List {
        /// Only this state: running, succeeded, failed, reconcile_required, voided.
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        starting_after: Option<i64>,
        /// Every account's executions, with the operator token.
        #[arg(long)]
        operator: bool,
    },
    /// Show one execution.
    Get { id: String },
    /// Every execution created in a time range as CSV, to standard output (a session, or a key
    /// in VISA_API_KEY for its own).
    Export {
        /// RFC 3339; default 30 days before --to.
        #[arg(long)]
        from: Option<String>,
        /// RFC 3339, exclusive; default now.
        #[arg(long)]
        to: Option<String>,
    },
    /// Settle an execution whose outcome a crash lost (operator token).
    Reconcile {
        id: String,
        /// Charge this many dollars (whole cents, at most the hold).
        #[arg(long, conflicts_with_all = ["void", "capture_micros"], required_unless_present_any = ["void", "capture_micros"])]
        capture: Option<String>,
        /// Charge exactly this many micros (1 cent = 10000), e.g. a sub-cent hold as it was.
        #[arg(long, conflicts_with = "void")]
        capture_micros: Option<u64>,
        /// Charge nothing and free the Idempotency-Key.
        #[arg(long)]
        void: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Recompute balances, holds and spend counters from the ledger; exit 1 on any mismatch.
    Verify {
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

/// The database of an offline command: the SQLite file in the data dir, or `--database`.
#[derive(Debug, Args)]
pub struct DatabaseArgs {
    #[arg(long, default_value = "./visa-data", env = "VISA_DATA_DIR")]
    pub data_dir: PathBuf,
    /// A shared PostgreSQL database instead of the data dir's SQLite file.
    #[arg(long = "database", value_name = "URL", env = "VISA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

#[derive(Debug, Args)]
pub struct SpendArgs {
    /// Split by `key`, `tool` or `end-user` (per day only); default: not split.
    #[arg(long, value_parser = ["none", "key", "tool", "end-user"], default_value = "none")]
    pub by: String,
    /// How far back: `7d`, `24h`, … (default 30d; at most 366 days, or 31 days of hours).
    #[arg(long, default_value = "30d", value_parser = parse_duration_seconds)]
    pub since: u64,
    /// `day` (default) or `hour`.
    #[arg(long, value_parser = ["hour", "day"], default_value = "day")]
    pub granularity: String,
    /// Print CSV (a header row, then one row per bucket and group) instead of a table.
    #[arg(long)]
    pub csv: bool,
}

/// `30s`, `10m`, `2h`, `1d`, or plain seconds.
pub fn parse_duration_seconds(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let multiplier = match unit {
        "" | "s" => Some(1),
        "m" => Some(60),
        "h" => Some(3600),
        "d" => Some(86_400),
        _ => None,
    };
    multiplier
        .and_then(|m| number.parse::<u64>().ok()?.checked_mul(m))
        .ok_or_else(|| format!("'{text}' is not a duration like 30s, 10m, 2h or 1d"))
}

#[cfg(test)]
mod tests {
    use super::parse_duration_seconds;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_seconds("10m"), Ok(600));
        assert_eq!(parse_duration_seconds("45"), Ok(45));
        assert_eq!(parse_duration_seconds("1d"), Ok(86_400));
        assert!(parse_duration_seconds("10x").is_err());
        assert!(parse_duration_seconds("m").is_err());
        assert!(parse_duration_seconds("99999999999999999999d").is_err());
    }
}
