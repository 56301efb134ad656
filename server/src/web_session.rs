//! Signed-in sessions on top of tower-sessions: establish on login (new id), enforce the idle and
//! absolute limits on every request, end one, end all others. The session data lives in the
//! tower-sessions store; `auth::SessionRegistry` indexes it by user.

use auth::sessions::{new_handle, Liveness, NewSession, SignedIn};
use auth::{now_unix, SessionPolicy, SessionRegistry, User};
use std::str::FromStr;
use std::sync::Arc;
use tower_sessions::session::Id;
use tower_sessions::{Session, SessionStore};

use crate::error::AppError;
use crate::session_cache::SessionCache;

/// Key of the signed-in record inside the session data.
pub const SIGNED_IN_KEY: &str = "signed_in";

/// How often something that outlives a request (a server-sent event stream) asks the shared registry
/// whether its session still stands: it ends within this (plus one query) of a logout, revocation,
/// password change or expiry on any instance. Well under the 5 s the product promises.
pub const SESSION_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone)]
pub struct SessionManager {
    pub registry: SessionRegistry,
    pub store: Arc<dyn SessionStore>,
    pub policy: SessionPolicy,
    /// Answers a signed-in request from memory while the user's sessions are unchanged; every change
    /// below tells it, after the change is committed.
    pub cache: SessionCache,
}

impl SessionManager {
    /// Signs `user` in on this session. The session id is replaced first, so an id planted before
    /// login (session fixation) is worthless afterwards.
    pub async fn establish(&self, session: &Session, user: &User, user_agent: &str, client_ip: &str) -> Result<SignedIn, AppError> {
        if let Ok(Some(previous)) = session.get::<SignedIn>(SIGNED_IN_KEY).await {
            self.registry.remove(&previous.handle).await?;
            self.cache.changed(previous.user_id).await;
        }
        if let Some(old) = session.id() {
            self.cache.forget(&old);
        }
        session.cycle_id().await?;
        session.clear().await;
        let now = now_unix();
        let signed = SignedIn { user_id: user.id, username: user.username.clone(), handle: new_handle(), created_at: now, last_seen_at: now };
        session.insert(SIGNED_IN_KEY, &signed).await?;
        // Save now to learn the new store id, which the registry needs for revocation.
        session.save().await?;
        let store_id = session.id().ok_or_else(|| AppError::Internal("session has no id after save".into()))?;
        self.registry
            .register(NewSession {
                handle: &signed.handle,
                store_id: &store_id.to_string(),
                user_id: user.id,
                created_at: now,
                expires_at: self.policy.expires_at(now, now),
                user_agent,
                client_ip,
            })
            .await?;
        // The user's list of sessions has one more.
        self.cache.changed(user.id).await;
        Ok(signed)
    }

    /// The signed-in record of this session if it is still valid; an expired or revoked one is
    /// destroyed. Refreshes the idle clock at most every [`SessionPolicy::touch_interval`]. Answered
    /// from the cache when it can vouch for the session (no storage read); otherwise from storage,
    /// and remembered. Beside it, the generation of the user's sessions it was checked at (when the
    /// cache knows one), for [`Self::sessions_of`] in the same request.
    pub async fn current(&self, session: &Session) -> Result<Option<(SignedIn, Option<u64>)>, AppError> {
        let now = now_unix();
        let id = session.id();
        if let Some(id) = &id {
            if let Some((signed, generation)) = self.cache.signed_in(id, now, &self.policy).await {
                return Ok(Some((signed, Some(generation))));
            }
        }
        let Some(mut signed) = session.get::<SignedIn>(SIGNED_IN_KEY).await? else {
            return Ok(None);
        };
        // Read before the registry is: a change committed after this read is a newer generation.
        let generation = self.cache.generation(signed.user_id).await;
        let live = self.policy.liveness(signed.created_at, signed.last_seen_at, now) == Liveness::Active
            && self.registry.is_live(&signed.handle, signed.user_id).await?;
        if !live {
            self.registry.remove(&signed.handle).await?;
            self.cache.changed(signed.user_id).await;
            session.flush().await?;
            return Ok(None);
        }
        if now - signed.last_seen_at >= self.policy.touch_interval() {
            signed.last_seen_at = now;
            session.insert(SIGNED_IN_KEY, &signed).await?;
            self.registry.touch(&signed.handle, now, self.policy.expires_at(signed.created_at, now)).await?;
            self.cache.changed(signed.user_id).await;
            // The touch made a newer generation than the one read above.
            return Ok(Some((signed, None)));
        }
        if let Some(id) = id {
            self.cache.remember(id, &signed, generation);
        }
        Ok(Some((signed, generation)))
    }

    /// `user_id`'s sessions that have not expired, newest first (the success page's list).
    /// `checked_at`: the generation [`Self::current`] checked this request's session at.
    pub async fn sessions_of(&self, user_id: i64, checked_at: Option<u64>) -> Result<Vec<auth::sessions::SessionInfo>, auth::AuthError> {
        let now = now_unix();
        self.cache.sessions_of(user_id, now, checked_at, || self.registry.list_for_user(user_id, now)).await
    }

    /// Whether `signed`'s session still stands now, by the shared registry (see
    /// [`SessionRegistry::is_active`]); its idle and absolute limits are checked against what the
    /// session recorded too.
    pub async fn still_active(&self, signed: &SignedIn) -> Result<bool, AppError> {
        let now = now_unix();
        if self.policy.liveness(signed.created_at, signed.last_seen_at, now) == Liveness::AbsoluteExpired {
            return Ok(false);
        }
        Ok(self.registry.is_active(&signed.handle, signed.user_id, now).await?)
    }

    /// Resolves once `signed`'s session has ended, wherever that happened: the "session ended" signal
    /// for anything that outlives the request that checked the session (server-sent event streams end
    /// with it). Polls [`Self::still_active`] every [`SESSION_CHECK_INTERVAL`]; a registry that cannot
    /// be read counts as ended (fail closed: a browser's EventSource simply reconnects and is checked
    /// again).
    pub fn ended(&self, signed: SignedIn) -> impl std::future::Future<Output = ()> + Send + 'static {
        let manager = self.clone();
        async move {
            loop {
                tokio::time::sleep(SESSION_CHECK_INTERVAL).await;
                match manager.still_active(&signed).await {
                    Ok(true) => continue,
                    Ok(false) => tracing::debug!(user_id = signed.user_id, "session ended: closing what it opened"),
                    Err(e) => tracing::warn!(error = %e, "session check failed: closing what it opened"),
                }
                return;
            }
        }
    }

    /// Logout: forget the session server-side, so a copy of the old cookie is useless.
    pub async fn end_current(&self, session: &Session) -> Result<(), AppError> {
        if let Some(signed) = session.get::<SignedIn>(SIGNED_IN_KEY).await? {
            self.registry.remove(&signed.handle).await?;
            self.cache.changed(signed.user_id).await;
        }
        if let Some(id) = session.id() {
            self.cache.forget(&id);
        }
        session.flush().await?;
        Ok(())
    }

    /// Ends one of `me`'s other sessions by its public handle.
    pub async fn revoke(&self, me: &SignedIn, handle: &str) -> Result<(), AppError> {
        if handle == me.handle {
            return Err(AppError::BadRequest("Use Sign out to end this session.".into()));
        }
        let store_id = self.registry.revoke(me.user_id, handle).await?;
        self.cache.changed(me.user_id).await;
        self.delete_data(&store_id).await;
        Ok(())
    }

    /// Ends every session of `me` but the current one; returns how many.
    pub async fn revoke_others(&self, me: &SignedIn) -> Result<usize, AppError> {
        let ids = self.registry.revoke_others(me.user_id, &me.handle).await?;
        self.cache.changed(me.user_id).await;
        for id in &ids {
            self.delete_data(id).await;
        }
        Ok(ids.len())
    }

    /// Deletes the data of `user_id`'s sessions whose registry rows are already gone (the other
    /// sessions a password change or a disabled account ended).
    pub async fn delete_ended(&self, user_id: i64, store_ids: &[String]) {
        self.cache.changed(user_id).await;
        for id in store_ids {
            self.delete_data(id).await;
        }
    }

    /// Deletes a session's data from the store. The registry row is already gone, which by itself
    /// makes the session invalid, so a failure here is logged rather than reported.
    async fn delete_data(&self, store_id: &str) {
        match Id::from_str(store_id) {
            Ok(id) => {
                if let Err(e) = self.store.delete(&id).await {
                    tracing::warn!(error = %e, "could not delete revoked session data");
                }
            }
            Err(_) => tracing::warn!("registry held a malformed session id"),
        }
    }
}
