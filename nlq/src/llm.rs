//! The model: any OpenAI-compatible chat-completions endpoint, through `async-openai`.
//!
//! Requests ask for structured output with a JSON schema (`response_format: json_schema`), temperature 0 and
//! a token cap, and are streamed: the answer is read until its JSON object ends, so a model that writes on
//! after it is not waited for. The answer must be one JSON object `{"sql", "explanation"}` (a `"params"` object of placeholder
//! values is still read, for models that write placeholders anyway); [`parse_draft`] is
//! strict about that shape (and lenient only about a code fence around it, which small models add despite
//! the schema). What to do with a malformed answer (one retry, then an error) is the engine's decision.

use std::time::{Duration, Instant};

use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, ChatCompletionStreamOptions, CreateChatCompletionRequest,
    ResponseFormat, ResponseFormatJsonSchema,
};
use futures_util::StreamExt;
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

/// One server-sent chunk of a streamed answer: the parts Aurora reads, llama.cpp's `timings` (sent with the
/// last chunk) included (async-openai's own type has no place for them).
#[derive(Debug, serde::Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<CompletionUsage>,
    timings: Option<Timings>,
}

#[derive(Debug, serde::Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Delta,
}

#[derive(Debug, Default, serde::Deserialize)]
struct Delta {
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
    #[error("the LLM's answer is longer than {MAX_ANSWER_BYTES} bytes")]
    TooLong,
}

/// The most of an answer that is read; an answer is one small JSON object, `max_tokens` long at most.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

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
        // The whole answer is timed in `complete_at`; reqwest's own limit is only a backstop.
        let http = reqwest::Client::builder()
            .timeout(config.timeout + Duration::from_secs(1))
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

    async fn complete_at(
        &self,
        messages: &[Message],
        temperature: f32,
    ) -> Result<(String, Usage, Duration), LlmError> {
        let mut request = self.request(messages);
        request.temperature = Some(temperature);
        let started = Instant::now();
        // From the request to the answer's end, a server that trickles tokens included.
        match tokio::time::timeout(self.config.timeout, self.stream(request, started)).await {
            Err(_) => Err(self.timed_out()),
            Ok(result) => result,
        }
    }

    /// Reads the streamed answer until its JSON object ends: whatever else the model starts to write after it
    /// is not waited for (the stream is dropped, which tells the server to stop). Prompt and generation times
    /// are the server's (llama.cpp's `timings`) or, when it does not say, measured here: until the first
    /// token, and after it.
    async fn stream(
        &self,
        request: CreateChatCompletionRequest,
        started: Instant,
    ) -> Result<(String, Usage, Duration), LlmError> {
        let chat = self.client.chat();
        let mut chunks = chat
            .create_stream_byot::<_, Chunk>(request)
            .await
            .map_err(|e| self.failed(e))?;
        let mut answer = AnswerText::default();
        let mut usage = Usage::default();
        let mut first_token: Option<Duration> = None;
        let mut timed = false;
        'read: while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| self.failed(e))?;
            if let Some(u) = &chunk.usage {
                usage.prompt_tokens = u.prompt_tokens;
                usage.completion_tokens = u.completion_tokens;
                usage.cached_tokens = u.prompt_tokens_details.as_ref().map_or(0, |d| d.cached_tokens);
            }
            if let Some(timings) = &chunk.timings {
                usage.prompt_ms = timings.prompt_ms;
                usage.generation_ms = timings.predicted_ms;
                timed = true;
            }
            for text in chunk.choices.into_iter().filter_map(|c| c.delta.content) {
                if text.is_empty() {
                    continue;
                }
                first_token.get_or_insert_with(|| started.elapsed());
                if !answer.push(&text)? {
                    tracing::debug!("the model wrote on after its JSON answer; stopped reading");
                    break 'read;
                }
            }
        }
        drop(chunks);
        let elapsed = started.elapsed();
        if !timed {
            if let Some(first) = first_token {
                usage.prompt_ms = first.as_secs_f64() * 1e3;
                usage.generation_ms = (elapsed - first).as_secs_f64() * 1e3;
            }
        }
        if answer.text.trim().is_empty() {
            return Err(LlmError::Empty);
        }
        Ok((answer.text, usage, elapsed))
    }

    fn timed_out(&self) -> LlmError {
        LlmError::Timeout {
            url: self.config.base_url.clone(),
            timeout: self.config.timeout,
        }
    }

    fn failed(&self, error: async_openai::error::OpenAIError) -> LlmError {
        match error {
            async_openai::error::OpenAIError::Reqwest(e) if e.is_timeout() => self.timed_out(),
            e => LlmError::Endpoint {
                url: self.config.base_url.clone(),
                reason: shorten(&e.to_string(), 400),
            },
        }
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
            stream: Some(true),
            stream_options: Some(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            }),
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

/// The answer as it streams in, and where its JSON object ends: braces and brackets are counted outside
/// strings (a `}` inside `"sql"` does not end it). Small models write explanations of several sentences
/// however the prompt asks; once `"sql"` is complete, the explanation is read up to
/// [`MAX_EXPLANATION_CHARS`] and the object closed here, so the rest is not waited for.
#[derive(Debug, Default)]
struct AnswerText {
    text: String,
    depth: usize,
    opened: bool,
    in_string: bool,
    escaped: bool,
    closed: bool,
    /// At the object's own level: the next string is a key.
    expect_key: bool,
    /// The string being read is a key of the object.
    in_key: bool,
    key: String,
    /// The string being read is the object's value of `key`.
    in_value: bool,
    value_chars: usize,
    sql_read: bool,
}

/// How much of the model's explanation is read once its SQL is complete.
pub const MAX_EXPLANATION_CHARS: usize = 160;

impl AnswerText {
    /// Appends `piece`; `false` when the answer is complete: something other than whitespace came after the
    /// object's end (that part is not kept), or the explanation reached its length.
    fn push(&mut self, piece: &str) -> Result<bool, LlmError> {
        for c in piece.chars() {
            if self.closed {
                if c.is_whitespace() {
                    continue;
                }
                return Ok(false);
            }
            if self.text.len() + c.len_utf8() > MAX_ANSWER_BYTES {
                return Err(LlmError::TooLong);
            }
            self.text.push(c);
            if self.in_string {
                self.string_char(c);
                if self.in_value
                    && self.sql_read
                    && self.key == "explanation"
                    && self.value_chars >= MAX_EXPLANATION_CHARS
                {
                    if self.escaped {
                        self.text.pop();
                    }
                    self.text.push_str("…\"}");
                    self.closed = true;
                    return Ok(false);
                }
                continue;
            }
            match c {
                '"' if self.opened => {
                    self.in_string = true;
                    self.in_key = self.depth == 1 && self.expect_key;
                    self.in_value = self.depth == 1 && !self.expect_key;
                    self.value_chars = 0;
                    if self.in_key {
                        self.key.clear();
                    }
                }
                '{' | '[' => {
                    self.depth += 1;
                    self.opened = true;
                    self.expect_key = self.depth == 1;
                }
                '}' | ']' if self.depth > 0 => {
                    self.depth -= 1;
                    self.closed = self.depth == 0;
                }
                ',' if self.depth == 1 => self.expect_key = true,
                ':' if self.depth == 1 => self.expect_key = false,
                _ => {}
            }
        }
        Ok(true)
    }

    fn string_char(&mut self, c: char) {
        if self.escaped {
            self.escaped = false;
        } else if c == '\\' {
            self.escaped = true;
        } else if c == '"' {
            self.in_string = false;
            if self.in_value && self.key == "sql" {
                self.sql_read = true;
            }
            self.in_key = false;
            self.in_value = false;
            return;
        }
        if self.in_key {
            self.key.push(c);
        } else if self.in_value {
            self.value_chars += 1;
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

    fn streamed(pieces: &[&str]) -> (String, bool) {
        let mut answer = AnswerText::default();
        for piece in pieces {
            if !answer.push(piece).unwrap() {
                return (answer.text, false);
            }
        }
        (answer.text, true)
    }

    #[test]
    fn a_streamed_answer_ends_with_its_json_object() {
        let object = r#"{"sql": "SELECT '}' AS brace, [1] AS a", "explanation": "say \"}\" {"}"#;
        let pieces: Vec<String> = object.chars().map(String::from).collect();
        let mut all: Vec<&str> = pieces.iter().map(String::as_str).collect();
        all.push("\n\n");
        assert_eq!(streamed(&all), (object.to_string(), true));
        all.push("Here is why: ...");
        assert_eq!(streamed(&all), (object.to_string(), false));
        // A fence before the object is kept (parse_draft strips it); what follows the object is not read.
        let (text, more) = streamed(&[
            "```json\n{\"sql\": \"SELECT 1\"",
            ", \"explanation\": \"\"}",
            "\n```",
        ]);
        assert!(!more);
        assert_eq!(parse_draft(&text).unwrap().sql, "SELECT 1");
        // Once the SQL is read, a long explanation is cut and the object closed; before it, nothing is cut.
        let sentence = "This query counts the events. ".repeat(20);
        let (text, more) = streamed(&[r#"{"sql": "SELECT 1", "explanation": ""#, &sentence, r#""}"#]);
        assert!(!more);
        let draft = parse_draft(&text).unwrap();
        assert_eq!(draft.sql, "SELECT 1");
        assert_eq!(draft.explanation.chars().count(), MAX_EXPLANATION_CHARS + 1);
        assert!(draft.explanation.ends_with('…'));
        let first = format!(r#"{{"explanation": "{sentence}", "sql": "SELECT 2"}}"#);
        assert_eq!(streamed(&[&first]), (first.clone(), true));
        let escaped = format!(
            r#"{{"sql": "SELECT 3", "explanation": "{}\"q\""#,
            "x".repeat(MAX_EXPLANATION_CHARS - 1)
        );
        let (text, _) = streamed(&[&escaped]);
        assert_eq!(parse_draft(&text).unwrap().sql, "SELECT 3");
        let mut long = AnswerText::default();
        assert!(matches!(
            long.push(&format!("{{\"sql\": \"{}", "x".repeat(MAX_ANSWER_BYTES))),
            Err(LlmError::TooLong)
        ));
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
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
    }
}
