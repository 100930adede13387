//! `phone_ids`: VAN's `phoneId` for the dialed number on every canvass response, so VAN
//! files the contact against that phone (and can mark a wrong number on it). One more VAN
//! request per post (`GET /people/{vanId}?$expand=phones`), counted like every other.

use async_trait::async_trait;
use serde_json::Value;

use super::{Extension, Hook, HookError, Metadata, SendContext, VanClients};
use crate::van::VanError;

pub const METADATA: Metadata = Metadata {
    name: "phone_ids",
    display_name: "VAN phone ids",
    description: "looks up VAN's phoneId for the dialed number before each canvass response is posted, so the contact is filed against that phone",
    spends_money: true,
    money_spending_hooks: &[Hook::BeforeSend],
    needs_settings: false,
    hooks: &[Hook::BeforeSend],
};

/// The extension, with a VAN client per database kept while its candidate is compiled.
#[derive(Debug, Default)]
pub struct PhoneIds {
    clients: VanClients,
}

#[async_trait]
impl Extension for PhoneIds {
    fn metadata(&self) -> &'static Metadata {
        &METADATA
    }

    /// It reads VAN: the candidate needs VAN settings whose key reads.
    async fn configured(&self, ctx: super::SetupContext<'_>) -> Vec<String> {
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
        let (Some(phone), Some(van_id)) = (&post.phone, post.van_id) else {
            return Ok(());
        };
        let answer = self
            .clients
            .send(ctx, mode, |client| async move {
                client.person_with_phones(van_id).await
            })
            .await?;
        let phone_id = match answer {
            Ok(person) => person.phone_id_for(phone),
            // An unknown person gets its 404 from the post itself.
            Err(VanError::Api { status: 404, .. }) => None,
            Err(e) => {
                return Err(HookError::from_van(
                    e,
                    "VAN would not show the person's phones",
                ));
            }
        };
        if let (Some(id), Value::Object(map)) = (phone_id, payload) {
            map.insert("phone_id".into(), id.into());
        }
        Ok(())
    }
}
