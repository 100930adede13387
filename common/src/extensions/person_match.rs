//! `person_match`: finds the VAN id of a call whose account carries none (a list loaded
//! without VAN ids) with VAN's `POST /people/find` on the call's first name, last name and
//! dialed phone — VAN's minimum match — before its canvass response is posted. Never
//! `findOrCreate` (which would create a duplicate person below the minimum), and never
//! following find's 302 (the redirect itself is the answer). A match is posted as usual
//! and the matched id kept on the call's ledger record (`post.van_id`), so a later try
//! does not search again; no match is an `unattempted_error` saying so. Every find is a VAN
//! request, counted on the day like every other (so within a `budget` or `cost_guard`).
//! List it before `phone_ids`, which needs the id.

use async_trait::async_trait;
use serde_json::Value;

use super::{Extension, Hook, HookError, Metadata, SendContext, SetupContext, VanClients};
use crate::van::FindPerson;

pub const METADATA: Metadata = Metadata {
    name: "person_match",
    display_name: "Person match",
    description: "finds the VAN id of calls whose account carries none with VAN's people/find on first name, last name and phone (never findOrCreate); each find is a counted VAN request",
    spends_money: true,
    money_spending_hooks: &[Hook::BeforeSend],
    needs_settings: false,
    hooks: &[Hook::BeforeSend],
};

#[derive(Debug, Default)]
pub struct PersonMatch {
    clients: VanClients,
}

#[async_trait]
impl Extension for PersonMatch {
    fn metadata(&self) -> &'static Metadata {
        &METADATA
    }

    async fn configured(&self, ctx: SetupContext<'_>) -> Vec<String> {
        VanClients::check(ctx, METADATA.name).await
    }

    async fn before_send(
        &self,
        ctx: SendContext<'_>,
        payload: &mut Value,
    ) -> Result<(), HookError> {
        let Some((post, mode)) = ctx.van_post(payload) else {
            return Ok(());
        };
        if post.van_id.is_some() {
            return Ok(());
        }
        let Some(call) = ctx.call else {
            return Err(HookError::Failed(
                "the call is not on the delivery's record, so there is nothing to search with"
                    .into(),
            ));
        };
        let first = call.first_name().trim();
        let last = call.last_name().trim();
        let missing: Vec<&str> = [
            (first.is_empty(), "a first name"),
            (last.is_empty(), "a last name"),
            (call.phone.is_none(), "a usable phone number"),
        ]
        .into_iter()
        .filter_map(|(lacks, what)| lacks.then_some(what))
        .collect();
        if !missing.is_empty() {
            return Err(HookError::Failed(format!(
                "too little to search VAN with: its people/find needs a first name, a last name and a phone, and this call lacks {} — give the account its VAN id, or fix the call's data, then POST /retry",
                missing.join(" and ")
            )));
        }
        let query = FindPerson {
            first_name: Some(first.to_owned()),
            last_name: Some(last.to_owned()),
            phone: call.phone.clone(),
            email: None,
            van_id: None,
        };
        let query = &query;
        let answer = self
            .clients
            .send(ctx, mode, |client| async move {
                client.find_person(query).await
            })
            .await?;
        match answer {
            Ok(Some(id)) => {
                if let Value::Object(map) = payload {
                    map.insert("van_id".into(), id.get().into());
                }
                Ok(())
            }
            Ok(None) => Err(HookError::Failed(format!(
                "VAN found no person with this call's first name, last name and phone in the {mode:?} database: add the person in VAN (or give the account its VAN id), then POST /retry"
            ))),
            Err(e) => Err(HookError::from_van(e, "VAN refused the search")),
        }
    }
}
