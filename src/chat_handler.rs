//! `POST /v1/chat/completions`: translate the chat body, open the upstream stream, then
//! translate it chunk by chunk ([`ChatStreamTranslator`]) or aggregate it and translate the
//! final Response object (`chat_response`).

use crate::chat_request::{ChatOptions, translate};
use crate::chat_response::{CompletionMeta, completion};
use crate::chat_stream::ChatStreamTranslator;
use crate::error::ProxyError;
use crate::exchange::Exchange;
use crate::json_body::parse_object;
use crate::routes::Proxy;
use crate::stream_pump::{aggregate, open_upstream, relay};

/// Serves one `/v1/chat/completions` request.
pub fn serve(proxy: &Proxy, exchange: &mut Exchange) -> Result<(), ProxyError> {
    let body = parse_object(&exchange.body)?;
    let options = ChatOptions {
        default_instructions: &proxy.config.default_instructions,
        system_as: proxy.config.chat_system_as,
    };
    let request = translate(body, &options)?;
    exchange.model = Some(request.upstream.model.clone());
    let Some((upstream, headers)) = open_upstream(proxy, exchange, &request.upstream) else {
        return Ok(());
    };
    let meta = CompletionMeta::new(&request.requested_model);
    if request.upstream.stream {
        let mut translator =
            ChatStreamTranslator::new(meta, request.include_usage, request.call_style);
        relay(exchange, upstream, &headers, &mut translator);
    } else {
        let response = aggregate(upstream)?.into_response()?;
        let answer = completion(&response, &meta, request.call_style);
        exchange.respond_json(200, &answer, &headers);
    }
    Ok(())
}
