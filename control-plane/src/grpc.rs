//! The gRPC services (`streamgate.v1`): translation to and from
//! [`Service`] calls, nothing else.

use std::sync::Arc;

use streamgate_api::v1 as pb;
use streamgate_api::ErrorCode;
use tonic::{Request, Response, Status};

use crate::auth::SignInKind;
use crate::chain::Decision;
use crate::model::{Asset, AssetStatus, GateRule, RuleKind};
use crate::service::{ApiError, Deleted, Service};

type Reply<T> = Result<Response<T>, Status>;

/// Every service, sharing one [`Service`].
#[derive(Clone)]
pub struct Grpc(pub Arc<Service>);

fn bearer<T>(request: &Request<T>) -> Option<&str> {
    request
        .metadata()
        .get(streamgate_api::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

impl Grpc {
    /// Lets operators through: a caller whose client certificate the TLS
    /// layer verified against `[control.tls] client_ca` (an engine, by
    /// mTLS), or one with the operator token.
    async fn operator<T>(&self, request: &Request<T>) -> Result<(), Status> {
        // tonic asks for client certificates only with a client CA, and a
        // presented one that does not verify ends the handshake: any
        // certificate here is verified.
        if request.peer_certs().is_some_and(|certs| !certs.is_empty()) {
            return Ok(());
        }
        Ok(self.0.operator(bearer(request)).await?)
    }
}

fn status_to_pb(s: AssetStatus) -> pb::AssetStatus {
    match s {
        AssetStatus::Uploading => pb::AssetStatus::Uploading,
        AssetStatus::Queued => pb::AssetStatus::Queued,
        AssetStatus::Transcoding => pb::AssetStatus::Transcoding,
        AssetStatus::Ready => pb::AssetStatus::Ready,
        AssetStatus::Failed => pb::AssetStatus::Failed,
    }
}

fn status_from_pb(value: i32) -> Result<AssetStatus, Status> {
    Ok(match pb::AssetStatus::try_from(value) {
        Ok(pb::AssetStatus::Uploading) => AssetStatus::Uploading,
        Ok(pb::AssetStatus::Queued) => AssetStatus::Queued,
        Ok(pb::AssetStatus::Transcoding) => AssetStatus::Transcoding,
        Ok(pb::AssetStatus::Ready) => AssetStatus::Ready,
        Ok(pb::AssetStatus::Failed) => AssetStatus::Failed,
        _ => return Err(ApiError::malformed("asset status is required").into()),
    })
}

fn rule_to_pb(r: &GateRule) -> pb::GateRule {
    pb::GateRule {
        kind: match r.kind {
            RuleKind::Erc721Token => pb::gate_rule::Kind::Erc721Token,
            RuleKind::Erc721Balance => pb::gate_rule::Kind::Erc721Balance,
            RuleKind::Erc1155Balance => pb::gate_rule::Kind::Erc1155Balance,
        } as i32,
        chain_id: r.chain_id,
        contract: r.contract.to_checksum(None),
        token_id: r.token_id.to_string(),
        min_balance: r.min_balance.to_string(),
    }
}

/// Parses and normalizes a rule from the wire.
fn rule_from_pb(r: &pb::GateRule) -> Result<GateRule, Status> {
    let kind = match pb::gate_rule::Kind::try_from(r.kind) {
        Ok(pb::gate_rule::Kind::Erc721Token) => RuleKind::Erc721Token,
        Ok(pb::gate_rule::Kind::Erc721Balance) => RuleKind::Erc721Balance,
        Ok(pb::gate_rule::Kind::Erc1155Balance) => RuleKind::Erc1155Balance,
        _ => return Err(ApiError::malformed("rule kind").into()),
    };
    Ok(GateRule::build(
        kind,
        r.chain_id,
        &r.contract,
        &r.token_id,
        &r.min_balance,
    )?)
}

fn asset_to_pb(a: &Asset) -> pb::Asset {
    pb::Asset {
        id: a.id.clone(),
        title: a.title.clone(),
        status: status_to_pb(a.status) as i32,
        progress_percent: a.progress,
        error: a.error.clone(),
        rules: a.rules.iter().map(rule_to_pb).collect(),
        created_at: a.created_at,
        updated_at: a.updated_at,
    }
}

#[tonic::async_trait]
impl pb::assets_server::Assets for Grpc {
    async fn create_asset(&self, request: Request<pb::CreateAssetRequest>) -> Reply<pb::Asset> {
        self.operator(&request).await?;
        let r = request.get_ref();
        let status = if r.status == 0 {
            AssetStatus::Queued
        } else {
            status_from_pb(r.status)?
        };
        let asset = self.0.create_asset(&r.id, &r.title, status).await?;
        Ok(Response::new(asset_to_pb(&asset)))
    }

    async fn import_asset(&self, request: Request<pb::ImportAssetRequest>) -> Reply<pb::Asset> {
        self.operator(&request).await?;
        let r = request.get_ref();
        let asset = self.0.import_asset(&r.path, &r.id, &r.title).await?;
        Ok(Response::new(asset_to_pb(&asset)))
    }

    async fn get_asset(&self, request: Request<pb::GetAssetRequest>) -> Reply<pb::Asset> {
        self.operator(&request).await?;
        let asset = self.0.asset(&request.get_ref().id).await?;
        Ok(Response::new(asset_to_pb(&asset)))
    }

    async fn list_assets(
        &self,
        request: Request<pb::ListAssetsRequest>,
    ) -> Reply<pb::ListAssetsResponse> {
        self.operator(&request).await?;
        let assets = self.0.assets().await?;
        Ok(Response::new(pb::ListAssetsResponse {
            assets: assets.iter().map(asset_to_pb).collect(),
        }))
    }

    async fn delete_asset(
        &self,
        request: Request<pb::DeleteAssetRequest>,
    ) -> Reply<pb::DeleteAssetResponse> {
        self.operator(&request).await?;
        let deleted = self.0.delete_asset(&request.get_ref().id).await?;
        Ok(Response::new(pb::DeleteAssetResponse {
            files_removed: deleted == Deleted::WithFiles,
        }))
    }

    async fn update_asset_status(
        &self,
        request: Request<pb::UpdateAssetStatusRequest>,
    ) -> Reply<pb::Asset> {
        self.operator(&request).await?;
        let r = request.get_ref();
        let asset = self
            .0
            .update_status(
                &r.id,
                status_from_pb(r.status)?,
                r.progress_percent,
                &r.error,
            )
            .await?;
        Ok(Response::new(asset_to_pb(&asset)))
    }

    async fn set_gate(&self, request: Request<pb::SetGateRequest>) -> Reply<pb::Asset> {
        self.operator(&request).await?;
        let r = request.get_ref();
        let rules = r
            .rules
            .iter()
            .map(rule_from_pb)
            .collect::<Result<Vec<_>, _>>()?;
        let asset = self.0.set_gate(&r.id, &rules).await?;
        Ok(Response::new(asset_to_pb(&asset)))
    }
}

#[tonic::async_trait]
impl pb::auth_server::Auth for Grpc {
    async fn challenge(
        &self,
        request: Request<pb::ChallengeRequest>,
    ) -> Reply<pb::ChallengeResponse> {
        let r = request.get_ref();
        let c = self.0.challenge(&r.address, r.chain_id, &r.kind).await?;
        let (message, typed_data) = match c.kind {
            SignInKind::Eip712 => (String::new(), c.payload),
            _ => (c.payload, String::new()),
        };
        Ok(Response::new(pb::ChallengeResponse {
            challenge_id: c.id,
            message,
            typed_data,
            expires_at: c.expires_at,
        }))
    }

    async fn login(&self, request: Request<pb::LoginRequest>) -> Reply<pb::LoginResponse> {
        let r = request.get_ref();
        let s = self.0.login(&r.challenge_id, &r.signature).await?;
        Ok(Response::new(pb::LoginResponse {
            session: s.token,
            address: s.address,
            expires_at: s.expires_at,
        }))
    }

    async fn logout(&self, request: Request<pb::LogoutRequest>) -> Reply<pb::LogoutResponse> {
        self.0.logout(bearer(&request)).await?;
        Ok(Response::new(pb::LogoutResponse {}))
    }
}

#[tonic::async_trait]
impl pb::access_server::Access for Grpc {
    async fn issue_playback_token(
        &self,
        request: Request<pb::PlaybackRequest>,
    ) -> Reply<pb::PlaybackToken> {
        let caller = self.0.caller(bearer(&request)).await?;
        let r = request.get_ref();
        let p = self.0.playback(&caller, &r.asset_id, r.ttl_seconds).await?;
        Ok(Response::new(pb::PlaybackToken {
            token: p.token,
            hls: p.hls,
            dash: p.dash,
            expires_at: p.expires_at,
            jti: p.jti,
        }))
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Reply<pb::RevokeTokenResponse> {
        self.operator(&request).await?;
        let r = request.get_ref();
        self.0.revoke(&r.jti, r.expires_at).await?;
        Ok(Response::new(pb::RevokeTokenResponse {}))
    }
}

#[tonic::async_trait]
impl pb::chain_server::Chain for Grpc {
    async fn verify_ownership(
        &self,
        request: Request<pb::VerifyOwnershipRequest>,
    ) -> Reply<pb::VerifyOwnershipResponse> {
        self.operator(&request).await?;
        let r = request.get_ref();
        let asset = self.0.asset(&r.asset_id).await?;
        let (allowed, cached) = match self.0.verify_ownership(&r.address, &asset).await {
            Decision::Allowed { cached } => (true, cached),
            Decision::Denied { cached } => (false, cached),
            Decision::Unavailable(detail) => {
                return Err(ApiError::new(ErrorCode::ChainUnavailable, detail).into())
            }
        };
        Ok(Response::new(pb::VerifyOwnershipResponse {
            allowed,
            rules: asset.rules.iter().map(rule_to_pb).collect(),
            cached,
        }))
    }
}

#[tonic::async_trait]
impl pb::keys_server::Keys for Grpc {
    async fn get_engine_state(&self, _: Request<pb::EngineStateRequest>) -> Reply<pb::EngineState> {
        let state = self.0.engine_state().await?;
        Ok(Response::new(pb::EngineState {
            version: state.version,
            keys: state
                .keys
                .into_iter()
                .map(|(kid, public)| pb::PublicKey {
                    kid,
                    ed25519: public.to_vec(),
                })
                .collect(),
            revoked: state.revoked,
            open_assets: state.open_assets,
            deleted_assets: state.deleted_assets,
        }))
    }

    async fn rotate_key(
        &self,
        request: Request<pb::RotateKeyRequest>,
    ) -> Reply<pb::RotateKeyResponse> {
        self.operator(&request).await?;
        let kid = self.0.rotate_key().await?;
        Ok(Response::new(pb::RotateKeyResponse { kid }))
    }
}

#[tonic::async_trait]
impl pb::health_server::Health for Grpc {
    async fn check(&self, _: Request<pb::HealthRequest>) -> Reply<pb::HealthResponse> {
        let database = self.0.store().ping().await;
        Ok(Response::new(pb::HealthResponse {
            serving: true,
            database,
        }))
    }
}

fn job_to_pb(j: &crate::store::JobRecord) -> pb::Job {
    pb::Job {
        id: j.id.clone(),
        asset_id: j.asset_id.clone(),
        source_key: j.source_key.clone(),
        ladder: j.ladder.clone(),
        segment_seconds: j.segment_seconds,
        state: j.state.as_str().into(),
        attempts: j.attempts,
        runner: j.runner.clone(),
        error: j.error.clone(),
    }
}

#[tonic::async_trait]
impl pb::jobs_server::Jobs for Grpc {
    async fn submit_job(&self, request: Request<pb::SubmitJobRequest>) -> Reply<pb::Job> {
        self.operator(&request).await?;
        let r = request.get_ref();
        let job = self
            .0
            .submit_job(&r.asset_id, &r.source_key, &r.ladder, r.segment_seconds)
            .await?;
        Ok(Response::new(job_to_pb(&job)))
    }

    async fn claim_job(
        &self,
        request: Request<pb::ClaimJobRequest>,
    ) -> Reply<pb::ClaimJobResponse> {
        self.operator(&request).await?;
        let r = request.get_ref();
        let job = self.0.claim_job(&r.runner, r.lease_seconds).await?;
        Ok(Response::new(pb::ClaimJobResponse {
            job: job.as_ref().map(job_to_pb),
        }))
    }

    async fn renew_lease(
        &self,
        request: Request<pb::RenewLeaseRequest>,
    ) -> Reply<pb::RenewLeaseResponse> {
        self.operator(&request).await?;
        let r = request.get_ref();
        let held = match self
            .0
            .renew_lease(&r.job_id, &r.runner, r.lease_seconds, r.progress_percent)
            .await
        {
            Ok(()) => true,
            Err(e) if e.code == ErrorCode::LeaseLost => false,
            Err(e) => return Err(e.into()),
        };
        Ok(Response::new(pb::RenewLeaseResponse { held }))
    }

    async fn finish_job(&self, request: Request<pb::FinishJobRequest>) -> Reply<pb::Job> {
        self.operator(&request).await?;
        let r = request.get_ref();
        let outcome = if r.error.is_empty() {
            crate::service::JobOutcome::Published
        } else {
            crate::service::JobOutcome::Failed {
                error: r.error.clone(),
                retry: r.retry,
            }
        };
        let job = self.0.finish_job(&r.job_id, &r.runner, outcome).await?;
        Ok(Response::new(job_to_pb(&job)))
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Reply<pb::ListJobsResponse> {
        self.operator(&request).await?;
        let jobs = self.0.list_jobs().await?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: jobs.iter().map(job_to_pb).collect(),
        }))
    }
}
