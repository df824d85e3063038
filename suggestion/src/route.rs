//! The Suggestion service as a server mounts it: GetSuggestions requests are decoded with
//! their trials still encoded ([`RawSuggestionsRequest`]), so that the history cache
//! ([`crate::history`]) compares them with the previous request's bytes and decodes only
//! the new ones; every other method goes to the generated service unchanged.
//!
//! The generated server decodes a request into its message type before the handler runs,
//! which for a 1,000-trial history was most of a request's time; this router is the
//! generated one with another request type for one path, on tonic's own `Grpc` machinery
//! (limits, status codes, compression and framing unchanged).

use std::convert::Infallible;

use kestrel_proto::katib::suggestion_server::{self, SuggestionServer};
use kestrel_proto::katib::{self as pb};
use kestrel_proto::raw::RawSuggestionsRequest;
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};

use crate::grpc::{SuggestionService, answer_queued};

const GET_SUGGESTIONS: &str = "/api.v1.beta1.Suggestion/GetSuggestions";

/// Katib's `api.v1.beta1.Suggestion`, GetSuggestions on encoded trials.
#[derive(Debug, Clone)]
pub struct SuggestionRoutes {
    decoded: SuggestionServer<SuggestionService>,
    max_decoding_message_size: usize,
}

impl SuggestionRoutes {
    /// The service, refusing requests over `max_decoding_message_size` bytes.
    pub fn new(max_decoding_message_size: usize) -> Self {
        SuggestionRoutes {
            decoded: SuggestionServer::new(SuggestionService)
                .max_decoding_message_size(max_decoding_message_size),
            max_decoding_message_size,
        }
    }
}

impl NamedService for SuggestionRoutes {
    const NAME: &'static str = suggestion_server::SERVICE_NAME;
}

struct RawGetSuggestions;

impl UnaryService<RawSuggestionsRequest> for RawGetSuggestions {
    type Response = pb::GetSuggestionsReply;
    type Future = BoxFuture<tonic::Response<Self::Response>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<RawSuggestionsRequest>) -> Self::Future {
        Box::pin(async move {
            answer_queued(request.into_inner())
                .await
                .map(tonic::Response::new)
        })
    }
}

impl<B> Service<http::Request<B>> for SuggestionRoutes
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != GET_SUGGESTIONS {
            return self.decoded.call(req);
        }
        let limit = self.max_decoding_message_size;
        Box::pin(async move {
            let codec =
                tonic_prost::ProstCodec::<pb::GetSuggestionsReply, RawSuggestionsRequest>::default(
                );
            let mut grpc = Grpc::new(codec).apply_max_message_size_config(Some(limit), None);
            Ok(grpc.unary(RawGetSuggestions, req).await)
        })
    }
}
