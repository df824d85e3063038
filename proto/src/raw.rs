//! `GetSuggestionsRequest` with its trials left encoded: what a suggestion server decodes
//! when it wants to compare a request's trials with the previous request's before paying
//! for their decoding.
//!
//! Katib sends every trial of the experiment with every GetSuggestions call, and nearly
//! all of them are the ones it sent last time. [`RawSuggestionsRequest`] has the same wire
//! format as [`katib::GetSuggestionsRequest`](crate::katib::GetSuggestionsRequest) (field
//! numbers 1, 2, 4 and 5; an embedded message is length-delimited bytes on the wire), but
//! keeps each `Trial` as the bytes it arrived in. Decoding one from a buffer of `Bytes`
//! (what tonic hands a codec) slices the buffer instead of copying. A trial's bytes decode
//! with `katib::Trial::decode`; equal bytes always decode to equal trials.

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};

use crate::katib as pb;

/// A GetSuggestions request whose trials are still encoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawSuggestionsRequest {
    /// The experiment (field 1), decoded.
    pub experiment: Option<pb::Experiment>,
    /// Each `Trial` (field 2) as its encoded bytes, in order.
    pub trials: Vec<Bytes>,
    /// Field 4.
    pub current_request_number: i32,
    /// Field 5.
    pub total_request_number: i32,
}

impl RawSuggestionsRequest {
    /// The raw form of a decoded request (each trial encoded again).
    pub fn from_decoded(req: pb::GetSuggestionsRequest) -> Self {
        RawSuggestionsRequest {
            experiment: req.experiment,
            trials: req
                .trials
                .iter()
                .map(|t| Bytes::from(t.encode_to_vec()))
                .collect(),
            current_request_number: req.current_request_number,
            total_request_number: req.total_request_number,
        }
    }
}

impl Message for RawSuggestionsRequest {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if let Some(e) = &self.experiment {
            encoding::message::encode(1, e, buf);
        }
        for t in &self.trials {
            encoding::bytes::encode(2, t, buf);
        }
        if self.current_request_number != 0 {
            encoding::int32::encode(4, &self.current_request_number, buf);
        }
        if self.total_request_number != 0 {
            encoding::int32::encode(5, &self.total_request_number, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::message::merge(
                wire_type,
                self.experiment.get_or_insert_with(Default::default),
                buf,
                ctx,
            ),
            2 => {
                let mut t = Bytes::new();
                encoding::bytes::merge(wire_type, &mut t, buf, ctx)?;
                self.trials.push(t);
                Ok(())
            }
            4 => encoding::int32::merge(wire_type, &mut self.current_request_number, buf, ctx),
            5 => encoding::int32::merge(wire_type, &mut self.total_request_number, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        self.experiment
            .as_ref()
            .map_or(0, |e| encoding::message::encoded_len(1, e))
            + encoding::bytes::encoded_len_repeated(2, &self.trials)
            + if self.current_request_number != 0 {
                encoding::int32::encoded_len(4, &self.current_request_number)
            } else {
                0
            }
            + if self.total_request_number != 0 {
                encoding::int32::encoded_len(5, &self.total_request_number)
            } else {
                0
            }
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> pb::GetSuggestionsRequest {
        let trial = |name: &str, value: &str| pb::Trial {
            name: name.into(),
            spec: Some(pb::TrialSpec {
                parameter_assignments: Some(pb::trial_spec::ParameterAssignments {
                    assignments: vec![pb::ParameterAssignment {
                        name: "lr".into(),
                        value: value.into(),
                    }],
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        pb::GetSuggestionsRequest {
            experiment: Some(pb::Experiment {
                name: "e".into(),
                ..Default::default()
            }),
            trials: vec![trial("a", "0.1"), trial("b", "0.2"), pb::Trial::default()],
            current_request_number: 2,
            total_request_number: 5,
        }
    }

    #[test]
    fn the_wire_format_is_get_suggestions_requests() {
        let req = request();
        let bytes = Bytes::from(req.encode_to_vec());
        let raw = RawSuggestionsRequest::decode(bytes.clone()).unwrap();
        assert_eq!(raw.experiment, req.experiment);
        assert_eq!(
            (raw.current_request_number, raw.total_request_number),
            (2, 5)
        );
        let trials: Vec<pb::Trial> = raw
            .trials
            .iter()
            .map(|b| pb::Trial::decode(b.clone()).unwrap())
            .collect();
        assert_eq!(trials, req.trials);
        // Encoded again it is the same message, byte for byte.
        assert_eq!(raw.encode_to_vec(), bytes.to_vec());
        assert_eq!(raw.encoded_len(), bytes.len());
        assert_eq!(RawSuggestionsRequest::from_decoded(req), raw);
    }

    #[test]
    fn unknown_fields_are_skipped_and_bad_input_refused() {
        let mut bytes = request().encode_to_vec();
        // Field 3 (reserved, once request_number) as a varint, and field 9 as bytes.
        bytes.extend_from_slice(&[3 << 3, 7, (9 << 3) | 2, 1, 0xff]);
        let raw = RawSuggestionsRequest::decode(&bytes[..]).unwrap();
        assert_eq!(raw.trials.len(), 3);
        // A trial whose length runs past the end of the message.
        assert!(RawSuggestionsRequest::decode(&[(2 << 3) | 2, 10, 1, 2, 3][..]).is_err());
        // Trials as a varint instead of bytes.
        assert!(RawSuggestionsRequest::decode(&[2 << 3, 1][..]).is_err());
    }
}
