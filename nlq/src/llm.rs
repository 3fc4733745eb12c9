//! The model: any OpenAI-compatible chat-completions endpoint, through `async-openai`.
//!
//! Requests ask for structured output with a JSON schema (`response_format: json_schema`), temperature 0 and
//! a token cap. The answer must be one JSON object `{"sql", "explanation"}` (a `"params"` object of placeholder
//! values is still read, for models that write placeholders anyway); [`parse_draft`] is
//! strict about that shape (and lenient only about a code fence around it, which small models add despite
//! the schema). What to do with a malformed answer (one retry, then an error) is the engine's decision.

use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, ResponseFormat, ResponseFormatJsonSchema,
};
use serde_json::{json, Map, Value};

/// Where the model is and how to call it.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// e.g. `http://127.0.0.1:8090/v1`.
    pub base_url: String,
    pub model: String,
    /// Sent as a bearer token when set (read from an environment variable by the binaries, never logged).
    pub api_key: Option<String>,
    pub timeout: Duration,
    pub max_tokens: u32,
}

/// What the model proposed.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub sql: String,
    pub params: Map<String, Value>,
    pub explanation: String,
}

/// One call's cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Prompt tokens the server took from its cache (`usage.prompt_tokens_details.cached_tokens`).
    pub cached_tokens: u64,
    /// Time the server spent reading the prompt and generating, when it says (llama.cpp's `timings`).
    pub prompt_ms: f64,
    pub generation_ms: f64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.cached_tokens += other.cached_tokens;
        self.prompt_ms += other.prompt_ms;
        self.generation_ms += other.generation_ms;
    }
}

/// The parts of a chat completion Aurora reads, llama.cpp's `timings` included (async-openai's own type has no
/// place for them).
#[derive(Debug, serde::Deserialize)]
struct Completion {
    #[serde(default)]
    choices: Vec<CompletionChoice>,
    usage: Option<CompletionUsage>,
    timings: Option<Timings>,
}

#[derive(Debug, serde::Deserialize)]
struct CompletionChoice {
    message: CompletionMessage,
}

#[derive(Debug, serde::Deserialize)]
struct CompletionMessage {
    content: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct CompletionUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, serde::Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: u64,
}

#[derive(Debug, serde::Deserialize)]
struct Timings {
    #[serde(default)]
    prompt_ms: f64,
    #[serde(default)]
    predicted_ms: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the LLM endpoint {url} did not answer within {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("the LLM endpoint {url} failed: {reason}")]
    Endpoint { url: String, reason: String },
    #[error("the LLM answered with no message")]
    Empty,
}

/// A chat message of the conversation with the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    System(String),
    User(String),
    Assistant(String),
}

/// The JSON schema of an answer.
pub fn answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "sql": {"type": "string", "description": "One ClickHouse SELECT"},
            "explanation": {"type": "string"}
        },
        "required": ["sql", "explanation"],
        "additionalProperties": false
    })
}

/// A client of one endpoint.
pub struct Llm {
    client: async_openai::Client<OpenAIConfig>,
    config: LlmConfig,
}

impl Llm {
    pub fn new(config: LlmConfig) -> Result<Llm, LlmError> {
        crate::install_crypto_provider();
        let mut openai = OpenAIConfig::new().with_api_base(config.base_url.trim_end_matches('/'));
        // async-openai sends `Authorization: Bearer <key>` even when the key is empty; local servers ignore it.
        openai = openai.with_api_key(config.api_key.clone().unwrap_or_default());
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| LlmError::Endpoint {
                url: config.base_url.clone(),
                reason: format!("cannot build an HTTP client: {e}"),
            })?;
        Ok(Llm {
            client: async_openai::Client::with_config(openai).with_http_client(http),
            config,
        })
    }

    pub fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Sends the conversation; returns the raw text of the answer and the tokens used.
    pub async fn complete(&self, messages: &[Message]) -> Result<(String, Usage, Duration), LlmError> {
        self.complete_at(messages, 0.0).await
    }

    /// Like [`Llm::complete`], sampled at `temperature` (for alternative candidates).
    pub async fn complete_sampled(
        &self,
        messages: &[Message],
        temperature: f32,
    ) -> Result<(String, Usage, Duration), LlmError> {
        self.complete_at(messages, temperature).await
    }

    async fn complete_at(&self, messages: &[Message], temperature: f32) -> Result<(String, Usage, Duration), LlmError> {
        let mut request = self.request(messages);
        request.temperature = Some(temperature);
        let started = Instant::now();
        let chat = self.client.chat();
        let call = chat.create_byot::<_, Completion>(request);
        // reqwest's timeout covers the whole request; this one also covers a server that trickles bytes.
        let response = match tokio::time::timeout(self.config.timeout + Duration::from_secs(1), call).await {
            Err(_) => {
                return Err(LlmError::Timeout {
                    url: self.config.base_url.clone(),
                    timeout: self.config.timeout,
                })
            }
            Ok(Err(async_openai::error::OpenAIError::Reqwest(e))) if e.is_timeout() => {
                return Err(LlmError::Timeout {
                    url: self.config.base_url.clone(),
                    timeout: self.config.timeout,
                })
            }
            Ok(Err(e)) => {
                return Err(LlmError::Endpoint {
                    url: self.config.base_url.clone(),
                    reason: shorten(&e.to_string(), 400),
                })
            }
            Ok(Ok(response)) => response,
        };
        let elapsed = started.elapsed();
        let mut usage = response
            .usage
            .as_ref()
            .map(|u| Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                cached_tokens: u.prompt_tokens_details.as_ref().map_or(0, |d| d.cached_tokens),
                ..Usage::default()
            })
            .unwrap_or_default();
        if let Some(timings) = &response.timings {
            usage.prompt_ms = timings.prompt_ms;
            usage.generation_ms = timings.predicted_ms;
        }
        let text = response
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or(LlmError::Empty)?;
        Ok((text, usage, elapsed))
    }

    #[allow(deprecated)] // `max_tokens`: llama.cpp's server and older compatible servers read only this name.
    fn request(&self, messages: &[Message]) -> CreateChatCompletionRequest {
        let messages = messages
            .iter()
            .map(|m| match m {
                Message::System(text) => ChatCompletionRequestMessage::System(
                    ChatCompletionRequestSystemMessage::from(text.as_str()),
                ),
                Message::User(text) => {
                    ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage::from(text.as_str()))
                }
                Message::Assistant(text) => ChatCompletionRequestMessage::Assistant(
                    ChatCompletionRequestAssistantMessage::from(text.as_str()),
                ),
            })
            .collect();
        CreateChatCompletionRequest {
            messages,
            model: self.config.model.clone(),
            temperature: Some(0.0),
            max_tokens: Some(self.config.max_tokens),
            response_format: Some(ResponseFormat::JsonSchema {
                json_schema: ResponseFormatJsonSchema {
                    description: Some("A ClickHouse query answering the question".into()),
                    name: "aurora_query".into(),
                    schema: answer_schema(),
                    strict: Some(true),
                },
            }),
            ..Default::default()
        }
    }
}

/// Reads an answer into a [`Draft`], or says what is wrong with it (the reason goes back to the model).
pub fn parse_draft(text: &str) -> Result<Draft, String> {
    let trimmed = strip_fence(text.trim());
    let value: Value =
        serde_json::from_str(trimmed).map_err(|e| format!("the answer is not a JSON object ({e})"))?;
    let Value::Object(mut object) = value else {
        return Err("the answer is JSON but not an object".into());
    };
    let sql = match object.remove("sql") {
        Some(Value::String(s)) if !s.trim().is_empty() => s,
        Some(Value::String(_)) => return Err("\"sql\" is empty".into()),
        Some(_) => return Err("\"sql\" must be a string".into()),
        None => return Err("the object has no \"sql\"".into()),
    };
    let params = match object.remove("params") {
        Some(Value::Object(map)) => map,
        None | Some(Value::Null) => Map::new(),
        Some(_) => return Err("\"params\" must be an object of placeholder values".into()),
    };
    let explanation = match object.remove("explanation") {
        Some(Value::String(s)) => s,
        None | Some(Value::Null) => String::new(),
        Some(_) => return Err("\"explanation\" must be a string".into()),
    };
    if let Some(extra) = object.keys().next() {
        return Err(format!(
            "unexpected key \"{extra}\"; only sql, params, explanation"
        ));
    }
    Ok(Draft {
        sql: sql.trim().trim_end_matches(';').trim().to_string(),
        params,
        explanation: explanation.trim().to_string(),
    })
}

fn strip_fence(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("```") else {
        return text;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_parse_strictly() {
        let d = parse_draft(r#"{"sql": "SELECT 1;", "params": {"a": 1}, "explanation": "one"}"#).unwrap();
        assert_eq!(d.sql, "SELECT 1");
        assert_eq!(d.params["a"], 1);
        let fenced =
            parse_draft("```json\n{\"sql\": \"SELECT 2\", \"params\": {}, \"explanation\": \"\"}\n```")
                .unwrap();
        assert_eq!(fenced.sql, "SELECT 2");
        assert!(parse_draft("SELECT 1").unwrap_err().contains("not a JSON object"));
        assert!(parse_draft("[1]").unwrap_err().contains("not an object"));
        assert!(parse_draft(r#"{"params": {}}"#)
            .unwrap_err()
            .contains("no \"sql\""));
        assert!(parse_draft(r#"{"sql": "SELECT 1", "params": [1]}"#)
            .unwrap_err()
            .contains("params"));
        assert!(parse_draft(r#"{"sql": "SELECT 1", "drop": true}"#)
            .unwrap_err()
            .contains("drop"));
        assert!(parse_draft(r#"{"sql": "  "}"#).unwrap_err().contains("empty"));
    }

    #[test]
    fn requests_carry_the_schema_and_temperature_zero() {
        let llm = Llm::new(LlmConfig {
            base_url: "http://127.0.0.1:9/v1".into(),
            model: "m".into(),
            api_key: None,
            timeout: Duration::from_secs(1),
            max_tokens: 300,
        })
        .unwrap();
        let body =
            serde_json::to_value(llm.request(&[Message::System("s".into()), Message::User("u".into())]))
                .unwrap();
        assert_eq!(body["temperature"], 0.0);
        assert_eq!(body["max_tokens"], 300);
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(
            body["response_format"]["json_schema"]["schema"]["required"][0],
            "sql"
        );
        assert_eq!(body["messages"][1]["role"], "user");
    }
}
