//! `POST /v1/responses`: normalise, open the upstream stream, then relay it event by event or
//! aggregate it into one Response object (both through `stream_pump`).

use crate::error::ProxyError;
use crate::exchange::Exchange;
use crate::responses_relay::ResponsesTranscript;
use crate::responses_request::{NormaliseOptions, normalise_text};
use crate::routes::Proxy;
use crate::stream_pump::{aggregate, open_upstream, relay};

/// Serves one `/v1/responses` request.
pub fn serve(proxy: &Proxy, exchange: &mut Exchange) -> Result<(), ProxyError> {
    let options = NormaliseOptions {
        default_instructions: &proxy.config.default_instructions,
    };
    let request = normalise_text(&exchange.body, &options)?;
    exchange.model = Some(request.model.clone());
    let Some((upstream, headers)) = open_upstream(proxy, exchange, &request) else {
        return Ok(());
    };
    if request.stream {
        relay(
            exchange,
            upstream,
            &headers,
            &mut ResponsesTranscript::new(),
        );
    } else {
        let response = aggregate(upstream)?.into_response_text()?;
        exchange.respond_json_text(200, response, &headers);
    }
    Ok(())
}
