//! Links of existing accounts to IdP instances: an administrator's deliberate choice that
//! lets SSO through that IdP sign into a local or administrator's account (see
//! `provisioning::Candidate::reachable_through`). The one place that writes a link and its
//! audit row, for the admin route and the CLI alike; not who may do it (their callers check).

use gatehouse_store::{AuditEvent, Store, StoreError, User};

/// Links `user` to `idp_id` (`link`) or removes the link; `by` names who did it. Returns
/// false when there was no link to remove.
pub async fn change(
    store: &Store,
    user: &User,
    idp_id: &str,
    by: &str,
    link: bool,
    now: i64,
) -> Result<bool, StoreError> {
    let what = if link {
        store.link_idp(user.id, idp_id, by, now).await?;
        "linked"
    } else if store.unlink_idp(user.id, idp_id).await? {
        "unlinked"
    } else {
        return Ok(false);
    };
    store
        .audit(&AuditEvent {
            at: now,
            domain: String::new(),
            idp_id: Some(idp_id.to_owned()),
            user_id: Some(user.id),
            username: user.username.clone(),
            method: "admin-link".into(),
            outcome: "success".into(),
            reason: format!("{what} by {by}"),
            ip: String::new(),
        })
        .await?;
    Ok(true)
}
