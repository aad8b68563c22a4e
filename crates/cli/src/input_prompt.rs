//! Answers a server's input requests (MCP 2026-07-28 multi round-trip requests) on the terminal: form-mode
//! `elicitation/create` field by field, URL-mode by opening the page and waiting for Enter. Anything else
//! (sampling, roots) is not something a terminal can answer, so it ends in the error naming it.

use portcullis_client::input::{unanswered, InputProvider};
use serde_json::{json, Map, Value};
use std::io::{BufRead, Write};

/// The terminal prompt; only installed when stdin and stderr are terminals.
pub(crate) struct TerminalPrompt;

impl InputProvider for TerminalPrompt {
    fn answer(
        &self,
        method: &str,
        requests: &Map<String, Value>,
    ) -> portcullis_client::Result<Map<String, Value>> {
        let mut out = Map::new();
        for (key, req) in requests {
            if req.get("method").and_then(Value::as_str) != Some("elicitation/create") {
                let mut one = Map::new();
                one.insert(key.clone(), req.clone());
                return Err(unanswered(method, &one));
            }
            let params = req.get("params").cloned().unwrap_or(Value::Null);
            out.insert(key.clone(), elicit(&params));
        }
        Ok(out)
    }
}

fn ask(question: &str) -> Option<String> {
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end_matches(['\r', '\n']).to_owned()),
    }
}

/// One elicitation: the server's message, accept or decline, then each field of the requested schema.
fn elicit(params: &Value) -> Value {
    let message = params.get("message").and_then(Value::as_str).unwrap_or("");
    eprintln!("\nThe server asks: {message}");
    if let Some(url) = params.get("url").and_then(Value::as_str) {
        eprintln!("Open this URL to continue: {url}");
    }
    let go = ask("Answer it? [Y/n] ").unwrap_or_default();
    if go.eq_ignore_ascii_case("n") || go.eq_ignore_ascii_case("no") {
        return json!({"action": "decline"});
    }
    let mut content = Map::new();
    let props = params
        .pointer("/requestedSchema/properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for (field, schema) in props {
        let ty = schema
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string");
        let desc = schema
            .get("description")
            .and_then(Value::as_str)
            .map(|d| format!(" — {d}"))
            .unwrap_or_default();
        loop {
            let Some(text) = ask(&format!("  {field} ({ty}){desc}: ")) else {
                return json!({"action": "cancel"});
            };
            if text.is_empty() {
                break;
            }
            let v = match ty {
                "boolean" => match text.to_ascii_lowercase().as_str() {
                    "y" | "yes" | "true" => Some(json!(true)),
                    "n" | "no" | "false" => Some(json!(false)),
                    _ => None,
                },
                "integer" => text.parse::<i64>().ok().map(|n| json!(n)),
                "number" => text.parse::<f64>().ok().map(|n| json!(n)),
                _ => Some(json!(text)),
            };
            match v {
                Some(v) => {
                    content.insert(field.clone(), v);
                    break;
                }
                None => eprintln!("  not a valid {ty}; try again (empty to skip)"),
            }
        }
    }
    json!({"action": "accept", "content": content})
}
