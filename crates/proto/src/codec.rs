//! The servers' codec: prost's, except that a request body that is not
//! valid protobuf is the caller's mistake, INVALID_ARGUMENT naming the
//! request, where prost answers INTERNAL. Only the generated servers use it
//! (see `build.rs`); clients keep prost's codec. Must not change how
//! anything valid is encoded or decoded. Beside it, [`Encoded`]: a response
//! encoded once and written as is, for a message many streams send alike.

use std::marker::PhantomData;
use std::sync::Arc;

use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType};
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstEncoder};

/// Encodes responses as prost does, decodes requests strictly.
#[derive(Debug, Clone)]
pub struct RequestCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        RequestCodec {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder { _type: PhantomData }
    }
}

/// Decodes one request message; a decode failure is INVALID_ARGUMENT.
#[derive(Debug, Clone, Default)]
pub struct RequestDecoder<U> {
    _type: PhantomData<U>,
}

impl<U: Message + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("request: not valid protobuf: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// A response message already encoded: the server writes its bytes as they
/// are, so a message that many streams send alike (a Watch piece every
/// subscriber with the same filter gets) is encoded once and shared.
/// `WatchService`'s server sends these in place of `WatchResponse` (see
/// `build.rs`); its clients still decode `WatchResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Encoded(Arc<[u8]>);

impl Encoded {
    /// `message`, encoded.
    pub fn of(message: &impl Message) -> Self {
        Self(message.encode_to_vec().into())
    }

    /// Bytes that are already one message's encoding.
    pub fn shared(bytes: Arc<[u8]>) -> Self {
        Self(bytes)
    }

    /// The encoding.
    pub fn bytes(&self) -> &Arc<[u8]> {
        &self.0
    }
}

impl Message for Encoded {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    /// Only sent, never received: a field read into it is skipped.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0 = Arc::from([]);
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "unit tests: a failed expectation is a failed test"
    )]

    use super::*;
    use crate::pb;

    /// What the server writes for an encoded message is byte for byte what
    /// prost writes for the message, and decodes back to it.
    #[test]
    fn an_encoded_message_is_sent_as_prost_would_send_it() {
        let message = pb::WatchResponse {
            revision: 7,
            actor: "alice".into(),
            part: 2,
            revision_complete: true,
            ..Default::default()
        };
        let encoded = Encoded::of(&message);
        let mut written = Vec::new();
        encoded.encode(&mut written).unwrap();
        assert_eq!(written, message.encode_to_vec());
        assert_eq!(encoded.encoded_len(), message.encoded_len());
        assert_eq!(pb::WatchResponse::decode(&written[..]).unwrap(), message);
    }
}
