use clap::Parser;
use secrecy::SecretString;
use server::cli::{read_new_password, Cli, Command, TokenCommand, UserCommand};
use server::config::Settings;
use server::AppState;
use std::net::SocketAddr;
use std::process::ExitCode;

/// glibc's malloc took a fifth of a rendered page's time, a tenth of it waiting on its arena locks
/// between the runtime's threads (docs/benchmarks.md, "Signed-in pages"); mimalloc's per-thread heaps
/// do not contend.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&settings.log_format);
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(&settings).await,
        Command::User { action: UserCommand::Create { username, password_stdin } } => create_user(settings, &username, password_stdin).await,
        Command::Token { action: TokenCommand::Create { username, name, scopes, expires_days } } => {
            create_token(settings, &username, &name, &scopes, expires_days).await
        }
        Command::Routes => {
            for r in server::inventory::inventory() {
                println!("{}", serde_json::to_string(&r).unwrap_or_default());
            }
            Ok(())
        }
        Command::Retention { prune, json } => retention(settings, prune, json).await,
        Command::Simulate(args) => server::notify_cli::simulate(settings.notify_config(), args).await,
        Command::Worker { redis } => match settings.check_production() {
            Ok(()) => server::notify_cli::worker(&settings, redis).await,
            Err(e) => Err(e),
        },
        Command::Sink { addr, secret, fail_rate, delay_ms, stall_rate, stall_ms } => {
            let cfg = notify::sink::SinkConfig { secret, fail_rate, delay_ms, stall_rate, stall_ms, ..Default::default() };
            server::notify_cli::sink(addr, cfg).await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn,tower_sessions=warn"));
    // Logs go to stderr: stdout is for what a command prints (a token, a summary).
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn create_user(settings: Settings, username: &str, password_stdin: bool) -> Result<(), String> {
    let password = read_new_password(password_stdin)?;
    let options = leptos_options(&settings)?;
    let state = AppState::new(settings, options).await.map_err(|e| e.operator_message())?;
    let user = state.auth.create_user(username, SecretString::from(password)).await.map_err(|e| e.to_string())?;
    println!("created user {} (id {})", user.username, user.id);
    Ok(())
}

async fn create_token(settings: Settings, username: &str, name: &str, scopes: &str, expires_days: Option<u32>) -> Result<(), String> {
    use secrecy::ExposeSecret;
    let scopes: Vec<auth::tokens::Scope> = if scopes.trim() == "all" {
        auth::tokens::Scope::USER.to_vec()
    } else {
        scopes.split(',').map(|s| s.trim().parse::<auth::tokens::Scope>().map_err(|e| e.to_string())).collect::<Result<_, _>>()?
    };
    let pool = auth::db::connect(&settings.database_url).await.map_err(|e| e.to_string())?;
    let user = auth::UserStore::new(pool.clone()).find_by_username(username).await.map_err(|e| e.to_string())?;
    let user = user.ok_or_else(|| format!("no user named {username:?}"))?;
    let expires_at = expires_days.map(|d| auth::now_unix() + i64::from(d) * 86_400);
    let (info, secret) = auth::tokens::ApiTokenStore::new(pool)
        .with_max_lifetime_days(settings.auth.token_max_lifetime_days)
        .with_operators(&settings.operators())
        .create(user.id, name, &scopes, expires_at)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!("token {} ({}) for {}: {}", info.id, info.prefix, user.username, auth::tokens::Scope::join(&info.scopes));
    println!("{}", secret.expose_secret());
    Ok(())
}

async fn retention(settings: Settings, prune: bool, json: bool) -> Result<(), String> {
    let options = leptos_options(&settings)?;
    let state = AppState::new(settings, options).await.map_err(|e| e.operator_message())?;
    if prune {
        let report = state.retention.pass().await;
        if !report.held_lease {
            eprintln!("another instance holds the retention lease: only this instance's queue file was pruned");
        }
        for (store, n) in report.pruned.iter().filter(|(_, n)| **n > 0) {
            eprintln!("pruned {n} rows of {store}");
        }
    } else {
        state.retention.measure().await;
    }
    let report = state.retention.report();
    if json {
        println!("{}", serde_json::to_string(&report).map_err(|e| e.to_string())?);
    } else {
        print!("{}", server::retention::table(&report));
    }
    state.notify.shutdown().await;
    Ok(())
}

/// Leptos' own settings (Cargo.toml metadata and `LEPTOS_*`), with `APP_LISTEN_ADDR` / `APP_SITE_ROOT`
/// on top so that a deployment can be configured with `APP_` variables alone.
fn leptos_options(settings: &Settings) -> Result<leptos::config::LeptosOptions, String> {
    let mut options = leptos::config::get_configuration(None).map(|c| c.leptos_options).map_err(|e| format!("leptos configuration: {e}"))?;
    if let Some(addr) = settings.listen_addr.as_deref().filter(|a| !a.trim().is_empty()) {
        options.site_addr = addr.trim().parse().map_err(|_| format!("listen_addr: {addr:?} is not host:port"))?;
    }
    if let Some(root) = settings.site_root.as_deref().filter(|r| !r.trim().is_empty()) {
        options.site_root = root.trim().into();
    }
    Ok(options)
}

/// Applies every pending migration (the app database, and the session store's table when sessions live
/// there), then exits: run once before starting several instances on a new database.
async fn migrate(settings: &Settings) -> Result<(), String> {
    let pool = auth::db::connect(&settings.database_url).await.map_err(|e| e.to_string())?;
    server::state::migrate_all(&pool).await.map_err(|e| e.operator_message())?;
    if settings.session.store == server::config::SessionStoreKind::Database {
        server::session_store::AnyStore::database(&settings.database_url).await.map_err(|e| e.operator_message())?;
    }
    println!("migrations applied to the {} database", db::Engine::of_url(&settings.database_url).map(|e| e.as_str()).unwrap_or("app"));
    Ok(())
}

async fn serve(settings: Settings) -> Result<(), String> {
    settings.check_production()?;
    let options = leptos_options(&settings)?;
    let addr = options.site_addr;
    let mode = settings.mode;
    let state = AppState::new(settings, options).await.map_err(|e| e.operator_message())?;
    state.notify.start().await.map_err(|e| format!("notification pipeline: {e:?}"))?;
    let notify = state.notify.clone();
    // Workflow runs: claimed with leases, so several instances share them; resumes interrupted runs.
    state.flows.spawn().await;
    let engine = state.flows.clone();

    server::state::ensure_demo_user(&state).await;

    // Webhook recoveries whose runner died (here before a restart, or on another instance) are taken
    // over: at start and every minute.
    let hooks = state.hooks.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tick.tick().await;
            match hooks.resume_recoveries().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(recoveries = n, "resumed webhook recoveries"),
                Err(e) => tracing::warn!(error = %e, "could not look for webhook recoveries to resume"),
            }
        }
    });

    // Retention (issue 17): every store pruned to its age, one instance at a time for the shared ones.
    // The web session store (tower-sessions' own table) reclaims its expired rows on the same beat.
    let store = state.session_store.clone();
    let pruner = state.retention.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(pruner.interval());
        loop {
            tick.tick().await;
            pruner.pass().await;
            if let Err(e) = store.delete_expired().await {
                tracing::warn!(error = %e, "could not delete expired sessions");
            }
        }
    });

    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    // Without TCP_NODELAY small responses wait on delayed ACKs (a flat ~40 ms per request behind nginx).
    let listener = {
        use axum::serve::ListenerExt;
        listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        })
    };
    tracing::info!(%addr, ?mode, "listening");
    let served = axum::serve(listener, server::router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string());
    // Let step attempts in flight finish and release run leases; then finish in-flight deliveries and
    // release queue leases. Everything resumes on the next start (here or on another instance).
    engine.shutdown().await;
    notify.shutdown().await;
    served
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}
