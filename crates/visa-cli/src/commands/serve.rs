//! `visa-cli serve`: configure logging, load the catalog, start the server library and run
//! it until SIGTERM or Ctrl-C.

use crate::cli::ServeArgs;
use anyhow::{Context, anyhow};
use visa_core::key::Environment;
use visa_server::tools::catalog::Catalog;
use visa_server::{ServeConfig, Server};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    init_logging();
    let mut config = ServeConfig::new(args.listen, args.data_dir);
    config.environment = Environment::parse(&args.environment)
        .ok_or_else(|| anyhow!("--environment must be 'production' or 'preview', not '{}'", args.environment))?;
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        config.catalog = Catalog::from_toml(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    }
    config.brand = args.brand;
    config.trust.trusted_proxies = args.trusted_proxies;
    config.webhook_allow_private = args.webhook_allow_private;
    config.tls = args.tls_cert.zip(args.tls_key).map(|(cert, key)| visa_server::tls::TlsFiles { cert, key });
    if !args.local_networks.is_empty() {
        config.trust.local_networks = args.local_networks;
    }
    config.idempotency_ttl = std::time::Duration::from_secs(args.idempotency_ttl);
    config.node_lease = std::time::Duration::from_secs(args.node_lease);
    config.usage_minute_retention = std::time::Duration::from_secs(args.usage_minute_retention);
    config.usage_hour_retention = std::time::Duration::from_secs(args.usage_hour_retention);
    config.webhook_log_retention = std::time::Duration::from_secs(args.webhook_log_retention);
    config.max_connections = args.max_connections;
    config.max_connections_per_ip = args.max_connections_per_ip;
    config.sign_in_limits =
        visa_server::auth::throttle::SignInLimits::per_minute(args.sign_ins_per_ip, args.sign_ins_per_login);
    if let Some(url) = &args.database_url {
        let mut database = visa_store::Database::from_url(url).map_err(|e| anyhow!(e))?;
        if let visa_store::Database::Postgres(target) = &mut database {
            target.pool_size = args.database_pool_size;
        }
        config.database = Some(database);
    }
    config.operator_token = std::env::var("VISA_OPERATOR_TOKEN").ok().filter(|t| !t.is_empty());
    config.webhook_key = std::env::var("VISA_WEBHOOK_KEY").ok().filter(|k| !k.is_empty());
    config.pepper = std::env::var("VISA_KEY_PEPPER").ok().filter(|p| !p.is_empty()).map(String::into_bytes);
    let signals = visa_server::Signals::install()?;
    Server::start(config).await?.run_until_signal(signals).await
}

/// The log, at `VISA_LOG`'s level (`info` by default). rmcp's service loop reports each answer
/// it could not deliver to an MCP client that left (a hang-up, a cancelled request) as an
/// error; the call itself ran on and was recorded, so those lines are dropped unless
/// `VISA_LOG` names `rmcp` itself (e.g. `info,rmcp=debug`).
fn init_logging() {
    let directives = std::env::var("VISA_LOG").unwrap_or_else(|_| "info".into());
    let directives = if directives.contains("rmcp") { directives } else { format!("{directives},rmcp::service=off") };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives).unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).try_init();
}
