//! Who answers a server's input requests (MCP 2026-07-28 "Multi Round-Trip Requests"): an `InputRequiredResult`
//! carries requests such as `elicitation/create`, keyed by the server; the client retries the original request with
//! a result for each key. [`Preset`] answers from given results (`--input-responses`) and hands the rest to a
//! fallback (the CLI's terminal prompt when interactive); with nobody left to ask, the error names what the server
//! wants.

use crate::modern::describe_input_request;
use crate::{Error, Result};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Answers input requests.
pub trait InputProvider: Send + Sync {
    /// A result for every request of `requests` (made while serving `method`), keyed as they are.
    fn answer(&self, method: &str, requests: &Map<String, Value>) -> Result<Map<String, Value>>;
}

/// Given answers first, then a fallback.
pub struct Preset {
    answers: Map<String, Value>,
    fallback: Option<Arc<dyn InputProvider>>,
}

impl std::fmt::Debug for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Preset")
            .field("keys", &self.answers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Preset {
    /// Answers from `answers` (by key), then from `fallback`.
    pub fn new(answers: Map<String, Value>, fallback: Option<Arc<dyn InputProvider>>) -> Self {
        Self { answers, fallback }
    }
}

impl InputProvider for Preset {
    fn answer(&self, method: &str, requests: &Map<String, Value>) -> Result<Map<String, Value>> {
        let mut out = Map::new();
        let mut rest = Map::new();
        for (k, req) in requests {
            match self.answers.get(k) {
                Some(a) => {
                    out.insert(k.clone(), a.clone());
                }
                None => {
                    rest.insert(k.clone(), req.clone());
                }
            }
        }
        if rest.is_empty() {
            return Ok(out);
        }
        match &self.fallback {
            Some(f) => out.extend(f.answer(method, &rest)?),
            None => return Err(unanswered(method, &rest)),
        }
        Ok(out)
    }
}

/// The error for input requests nobody can answer, naming each.
pub fn unanswered(method: &str, requests: &Map<String, Value>) -> Error {
    let wants: Vec<String> = requests
        .iter()
        .map(|(k, r)| describe_input_request(k, r))
        .collect();
    Error::InputRequired {
        method: method.to_owned(),
        wants: wants.join("; "),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn requests() -> Map<String, Value> {
        json!({"confirm": {"method": "elicitation/create", "params": {"message": "Sure?",
            "requestedSchema": {"type": "object", "properties": {"confirmed": {"type": "boolean"}}}}}})
        .as_object()
        .cloned()
        .unwrap()
    }

    #[test]
    fn preset_answers_by_key_and_names_what_is_missing() {
        let answers =
            json!({"confirm": {"action": "accept", "content": {"confirmed": true}}, "other": 1});
        let p = Preset::new(answers.as_object().cloned().unwrap(), None);
        let got = p.answer("tools/call", &requests()).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got["confirm"]["action"], "accept");
        let none = Preset::new(Map::new(), None);
        let Err(Error::InputRequired { method, wants }) = none.answer("tools/call", &requests())
        else {
            panic!("expected InputRequired");
        };
        assert_eq!(method, "tools/call");
        assert_eq!(
            wants,
            "confirm (elicitation/create: \"Sure?\") [fields: confirmed (boolean)]"
        );
    }
}
