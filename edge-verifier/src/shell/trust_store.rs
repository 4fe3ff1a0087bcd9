//! The `TrustStore` Durable Object: durable memory of the newest revocation list this edge has verified
//! (one object, named [`TRUST_STORE_NAME`]; storage key `revocations`). Every isolate asks it whenever it
//! rebuilds its trust, with the lists it has (pulled, configured): the store keeps the newest verified
//! one ([`crate::revocations::choose`]) and answers it. So a fresh instance that cannot reach the issuer
//! uses the newest list ever seen, never the older one pinned in the configuration.

use worker::{console_error, durable_object, DurableObject, Env, Request, Response, State};

use crate::error::{ConfigKind, Error, RequestKind};
use crate::revocations::{choose, FloorDecision, FloorRequest};

use super::errors::Logged;
use super::http::{json_ok, json_request, respond, send_ok, stub};

/// The name of the one [`TrustStore`] object.
const TRUST_STORE_NAME: &str = "revocations";
/// Its storage key of the list.
const STORED_KEY: &str = "revocations";

/// Asks the trust store which revocation list to use, given the lists this isolate has; `None` when
/// there is none at all (version 0).
pub(super) async fn revocation_floor(
    env: &Env,
    keyring: &str,
    candidates: Vec<String>,
) -> Result<Option<String>, Error> {
    let body = serde_json::to_string(&FloorRequest { keyring: keyring.to_owned(), candidates })?;
    let store = stub(env, "TRUST", TRUST_STORE_NAME)?;
    let mut resp = send_ok(&store, json_request("https://trust/revocations", &body)?, "trust store").await?;
    let decision: FloorDecision = serde_json::from_str(&resp.text().await?)?;
    Ok(decision.list)
}

#[durable_object]
pub struct TrustStore {
    state: State,
    #[allow(dead_code)]
    env: Env,
}

impl TrustStore {
    async fn revocations(&self, mut req: Request) -> Result<Response, Error> {
        let body = req.bytes().await?;
        let ask: FloorRequest = serde_json::from_slice(&body).map_err(|e| {
            console_error!("trust request: {e}");
            RequestKind::InternalMessage("trust request")
        })?;
        let keyring = scanner_core::Keyring::from_json(&ask.keyring).map_err(ConfigKind::Keyring)?;
        let storage = self.state.storage();
        let stored = storage.get::<String>(STORED_KEY).await.logged("trust store read failed")?;
        let candidates: Vec<&str> = ask.candidates.iter().map(String::as_str).collect();
        let decision = choose(&keyring, stored.as_deref(), &candidates);
        for why in &decision.refused {
            console_error!("revocation list not used: {why}");
        }
        if let (true, Some(list)) = (decision.store, &decision.list) {
            // A list too large for one value is still used, only not remembered: logged, not fatal.
            if let Err(e) = storage.put(STORED_KEY, list.as_str()).await {
                console_error!("trust store write failed: {e}");
            }
        }
        json_ok(serde_json::to_string(&decision)?)
    }
}

impl DurableObject for TrustStore {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> worker::Result<Response> {
        respond(match req.path().as_str() {
            "/revocations" => self.revocations(req).await,
            _ => Err(RequestKind::NotFound.into()),
        })
    }
}
