//! Command line: `server` (or `server serve`) runs the app; `server user create NAME` adds an account,
//! reading the password without echo (or one line from stdin with `--password-stdin`); `retention`
//! shows storage per store (and prunes with `--prune`); `simulate`, `worker` and `sink` drive the
//! notification pipeline (see `notify_cli`).

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "server", version, about = "Implementation-Eng server and admin tool")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the web server (the default).
    Serve,
    /// Create the database if needed and apply migrations, then exit.
    Migrate,
    /// Manage accounts.
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// Print every route the server answers (method, path, kind), one JSON object per line.
    Routes,
    /// Storage per store (rows, bytes, oldest row, retention), measured now; `--prune` runs a
    /// retention pass first (safe beside running servers: the shared stores go under the lease).
    Retention {
        #[arg(long)]
        prune: bool,
        /// One JSON object (the `/api/v1/ops/storage` answer) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a notification simulation headless, with a progress bar, and print a summary.
    Simulate(SimulateArgs),
    /// Deliver notifications from Redis only (start one per machine to scale out).
    Worker {
        /// Redis URL (default: the `notify.redis_url` setting).
        #[arg(long)]
        redis: Option<String>,
    },
    /// A local webhook receiver that verifies signatures and counts deliveries per webhook-id.
    Sink {
        #[arg(long, default_value = "127.0.0.1:3100")]
        addr: std::net::SocketAddr,
        /// The `whsec_` secret the pipeline signs with.
        #[arg(long, env = "SINK_SECRET", default_value = notify::config::DEV_WEBHOOK_SECRET, hide_default_value = true)]
        secret: String,
        /// Share of requests answered 503 on purpose (0 to 1).
        #[arg(long, default_value_t = 0.0)]
        fail_rate: f64,
        /// Delay added to every request, milliseconds.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Share of requests held for --stall-ms and then failed (to provoke sender timeouts).
        #[arg(long, default_value_t = 0.0)]
        stall_rate: f64,
        #[arg(long, default_value_t = 10_000)]
        stall_ms: u64,
    },
}

#[derive(clap::Args, Debug, Clone)]
pub struct SimulateArgs {
    /// How many notifications (1 to 10,000,000).
    #[arg(long, default_value_t = 10_000, allow_negative_numbers = true)]
    pub count: u64,
    /// `max`, or `<n>-per-hour` such as `1m-per-hour`, `10m-per-hour`, `50000-per-hour`.
    #[arg(long, default_value = "1m-per-hour")]
    pub rate: String,
    /// Channel weights, e.g. `webhook=1,email=1,sms=1,push=1,noop=0`.
    #[arg(long, default_value = "webhook=1,email=1,sms=1,push=1")]
    pub mix: String,
    /// Share of simulated email/SMS/push calls that fail (0 to 1).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub failure_rate: f64,
    /// Latency the simulated providers add, milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u32,
    /// `embedded` (SQLite) or `redis`.
    #[arg(long, default_value = "embedded")]
    pub backend: String,
    /// Redis URL for `--backend redis` (default: the `notify.redis_url` setting).
    #[arg(long)]
    pub redis: Option<String>,
    /// Only produce: leave delivery to `server worker` processes (Redis backend).
    #[arg(long)]
    pub no_local_workers: bool,
    /// The embedded queue file (default: notify-simulate.db beside the app database).
    #[arg(long)]
    pub queue: Option<String>,
    /// Where webhook notifications go (default: the `notify.webhook.url` setting).
    #[arg(long)]
    pub webhook_url: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create an API token for USERNAME and print it once (stdout, one line).
    Create {
        username: String,
        #[arg(long, default_value = "cli")]
        name: String,
        /// Comma-separated scopes, or `all` (every user scope): notifications:read, notifications:write,
        /// webhooks:read, webhooks:write, workflows:read, workflows:write; and ops:read, for operators
        /// (`APP_OPERATORS`) only, named on its own.
        #[arg(long, default_value = "all")]
        scopes: String,
        /// Days until it expires (default and most: `auth.token_max_lifetime_days`, 365 unless set).
        /// No password is asked: whoever runs this already controls the server and its database.
        #[arg(long)]
        expires_days: Option<u32>,
    },
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account. The password is asked for twice on the terminal, without echo.
    Create {
        username: String,
        /// Read the password from the first line of standard input instead (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
}

/// Reads a new password: from stdin, or twice from the terminal without echo.
pub fn read_new_password(from_stdin: bool) -> Result<String, String> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map_err(|e| format!("could not read stdin: {e}"))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let first = rpassword::prompt_password("Password: ").map_err(|e| format!("could not read password: {e}"))?;
    let second = rpassword::prompt_password("Repeat password: ").map_err(|e| format!("could not read password: {e}"))?;
    if first != second {
        return Err("the passwords do not match".into());
    }
    Ok(first)
}
