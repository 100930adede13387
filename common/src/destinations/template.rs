//! The templated HTTP destination: the settings a campaign writes in its candidate document to
//! turn one call into one HTTP request for a partner system (a SOAP/XML bus, a JSON API), their
//! validation when the document is saved, and the rendering of a call into a request.
//!
//! Everything in the settings is untrusted. Templates are minijinja with strict undefined
//! values, so a misspelt variable fails when the document is saved (a trial render against
//! [`sample_context`]) rather than at night. Values are escaped by where they land:
//!
//! - `body`: by [`BodyFormat`] — `xml` escapes `< > & " ' /` as entities, `json` prints every
//!   value as a JSON literal (write `"name": {{ contact.first_name }}`, without quotes of your
//!   own), `text` prints values as they are.
//! - `url`: every value is percent-encoded as a URL component (only `A-Z a-z 0-9 - . _ ~` are
//!   left as they are), so write the `/`, `?`, `&` and `=` literally around the values. The
//!   scheme, host and port must be written out: templates may fill only the path and query.
//! - `headers`: values print as they are; a rendered value with a line break or a control
//!   character is refused rather than sent, and other characters are sent as UTF-8 bytes.
//!
//! Nothing turns escaping off: `| safe` and `{% autoescape %}` are refused. After rendering, a
//! URL whose path has a `.` or `..` segment, a `json` body that does not parse and an `xml`
//! body that is not well-formed are refused, on the sample when the settings are saved and on
//! every call.
//!
//! Templates run on a budget ([`check_constructs`], [`TEMPLATE_FUEL`], the rendered size
//! caps): they may print values, test them (`if`) and loop over them (`for`), with filters
//! whose result is never much larger than their input. Assignments, macros, functions
//! (`range`, `namespace`), the `*` and `**` operators and filters that repeat or pad text are
//! refused when saved — each could build a value of any size in a few steps, which no step
//! budget would notice. Every render stops after [`TEMPLATE_FUEL`] steps or once its output
//! passes the part's cap.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior};
use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::mapping::FieldError;
use crate::values::ResultKey;

/// Largest source of one template (the url, the body, one header value).
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Most headers one destination may configure.
pub const MAX_HEADERS: usize = 32;
/// Longest header name (real ones are a few dozen characters).
pub const MAX_HEADER_NAME: usize = 128;
/// Most `result_codes` one destination may map: a dialer's results number in the dozens,
/// and the result mapping itself is capped at 2,000 rows.
pub const MAX_RESULT_CODES: usize = 2_000;
/// Longest request timeout a destination may ask for: `sync-call` runs 60 s and starts its
/// last send 15 s in (`Settings::post_deadline`), so a send must end within 30 s and
/// leave time to write its receipt — a send cut off by the function's end is the one way
/// to deliver twice.
pub const MAX_TIMEOUT_SECS: u64 = 30;
/// Largest rendered body: a loop in an untrusted template must not build an unbounded request.
pub const MAX_RENDERED_BODY_BYTES: usize = 1024 * 1024;
/// Largest rendered URL or header value; servers commonly refuse more than 8 KiB anyway.
pub const MAX_RENDERED_LINE_BYTES: usize = 8 * 1024;

/// Steps one render of one template may take: a call template takes a few hundred; a loop
/// over a long value stops here instead of running for minutes.
pub const TEMPLATE_FUEL: u64 = 200_000;

/// The statements a template may use.
const STATEMENTS: &[&str] = &[
    "if", "elif", "else", "endif", "for", "endfor", "raw", "endraw",
];
/// The filters a template may use: none of them returns much more than it is given.
const FILTERS: &[&str] = &[
    "abs",
    "bool",
    "count",
    "d",
    "default",
    "e",
    "escape",
    "first",
    "float",
    "int",
    "last",
    "length",
    "lower",
    "reverse",
    "round",
    "string",
    "title",
    "trim",
    "upper",
    "urlencode",
];
/// Most `~` and `+` in one template: with no assignments, the largest value a template can
/// build is about this many of the call's values joined.
pub const MAX_CONCATENATIONS: usize = 256;
/// Longest value of a call a template renders (a name, a phone, an id are far shorter).
pub const MAX_VALUE_BYTES: usize = 4096;

/// Words of the template language that may stand before `(` without calling anything.
const KEYWORDS: &[&str] = &["if", "elif", "in", "and", "or", "not", "is", "else"];

/// Compiled-size cap for `failure_pattern`, so a hostile pattern cannot take the Lambda's memory.
const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Templates only need shallow macros; a low limit stops self-including templates early.
const RECURSION_LIMIT: usize = 64;

const URL: &str = "url";
const BODY: &str = "body";
const URL_ESCAPE: &str = "url";
/// Headers the HTTP client derives from the request itself; a template setting them could
/// smuggle a second request or send the body to another virtual host.
const FORBIDDEN_HEADERS: [&str; 3] = ["host", "content-length", "transfer-encoding"];

/// The HTTP method of the request.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    #[default]
    Post,
    Put,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
        }
    }
}

/// What the body is: decides how values are escaped in it and the default `Content-Type`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    Xml,
    Json,
    Text,
}

impl BodyFormat {
    /// The `Content-Type` sent when the settings do not configure one.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Xml => "text/xml; charset=utf-8",
            Self::Json => "application/json",
            Self::Text => "text/plain; charset=utf-8",
        }
    }

    fn auto_escape(self) -> AutoEscape {
        match self {
            Self::Xml => AutoEscape::Html,
            Self::Json => AutoEscape::Json,
            Self::Text => AutoEscape::None,
        }
    }
}

/// A templated HTTP destination as the candidate document spells it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HttpTemplateSettings {
    #[serde(default)]
    pub method: Method,
    /// Template; the scheme, host and port must be literal.
    pub url: String,
    /// Header name → value template. Names are literal.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Template.
    pub body: String,
    pub format: BodyFormat,
    /// Dialer result (any spelling the result mapping accepts) → the partner's code;
    /// templates see it as `code`. A call whose result has no code is not sent (`ignored`,
    /// with the reason).
    #[serde(default)]
    pub result_codes: BTreeMap<String, String>,
    /// A regex: a 2xx answer whose body matches is a failure (e.g. `<soapenv:Fault>`).
    #[serde(default)]
    pub failure_pattern: Option<String>,
    /// The Secrets Manager secret holding the TLS client certificate and CA bundle; checked
    /// (empty, whose it is) by the destination with the document's other secrets.
    #[serde(default)]
    pub secret_name: Option<String>,
    /// 1 to [`MAX_TIMEOUT_SECS`].
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// One call rendered into a request; stored in the ledger as the planned payload.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq)]
pub struct RenderedRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Why a call could not be rendered, naming the template (`url`, `body`, `headers.X`) and the
/// line. It never quotes the call's values: they are personal data and end up in logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{template}{}: {problem}", line_suffix(*.line))]
pub struct RenderError {
    pub template: String,
    pub line: Option<usize>,
    pub problem: RenderProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderProblem {
    /// The kind of minijinja's error only: its detail can quote values (`unable to calculate …`).
    #[error("{0}")]
    Engine(String),
    #[error(
        "the rendered value has a line break or control character, which a header cannot carry"
    )]
    HeaderControl,
    #[error("the rendered URL has whitespace or a control character")]
    UrlControl,
    #[error(
        "the rendered URL's path has a \".\" or \"..\" segment, which would move the request to another path"
    )]
    UrlDotSegment,
    #[error(
        "the rendered body is not valid JSON ({0}); values print as JSON literals, so do not put quotes around them"
    )]
    InvalidJson(String),
    #[error("the rendered body is not well-formed XML (line {0}, column {1})")]
    InvalidXml(u32, u32),
    #[error("the rendered text is over {0} bytes")]
    TooLarge(usize),
    #[error("the template took more than {TEMPLATE_FUEL} steps")]
    OutOfFuel,
    #[error("the call's value is over {MAX_VALUE_BYTES} bytes, more than a template renders")]
    ValueTooLarge,
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(", line {l}")).unwrap_or_default()
}

/// Where a rendered template goes, for the checks its output must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Url,
    Body,
    Header,
}

/// Settings compiled: templates parsed, checked by a trial render, ready to render calls.
#[derive(Debug, Clone)]
pub struct HttpTemplate {
    settings: HttpTemplateSettings,
    env: Environment<'static>,
    /// (header name, template name), in the settings' order.
    headers: Vec<(String, String)>,
    /// Added to every request because no `Content-Type` header is configured.
    default_content_type: Option<&'static str>,
    failure: Option<Regex>,
    /// `result_codes` by normalised result.
    codes: BTreeMap<ResultKey, String>,
    sample: RenderedRequest,
}

impl HttpTemplate {
    /// Checks and compiles the settings; `field_prefix` (e.g. `destinations[2]`) starts every
    /// error's field. All problems are reported at once.
    pub fn compile(
        settings: &HttpTemplateSettings,
        field_prefix: &str,
    ) -> Result<HttpTemplate, Vec<FieldError>> {
        let at = |field: &str| format!("{field_prefix}.{field}");
        let mut errors = Vec::new();
        let mut env = environment(settings.format);
        // (template name, field, part) of every template that parsed, for the trial render.
        let mut compiled: Vec<(String, String, Part)> = Vec::new();

        if let Err(message) = check_url_host(&settings.url) {
            errors.push(FieldError::new(at(URL), message));
        }
        if add_template(&mut env, URL, &settings.url, &at(URL), &mut errors) {
            compiled.push((URL.to_owned(), at(URL), Part::Url));
        }
        if add_template(&mut env, BODY, &settings.body, &at(BODY), &mut errors) {
            compiled.push((BODY.to_owned(), at(BODY), Part::Body));
        }

        if settings.headers.len() > MAX_HEADERS {
            errors.push(FieldError::new(
                at("headers"),
                format!(
                    "has {} headers; at most {MAX_HEADERS} are allowed",
                    settings.headers.len()
                ),
            ));
        }
        let mut headers = Vec::new();
        let mut seen = BTreeSet::new();
        let mut configures_content_type = false;
        for (name, value) in &settings.headers {
            let field = at(&format!("headers.{name}"));
            if let Err(message) = check_header_name(name) {
                errors.push(FieldError::new(field, message));
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if !seen.insert(lower.clone()) {
                errors.push(FieldError::new(
                    field,
                    "is configured twice (header names do not depend on case)",
                ));
                continue;
            }
            configures_content_type |= lower == "content-type";
            let template = format!("headers.{name}");
            if add_template(&mut env, &template, value, &field, &mut errors) {
                compiled.push((template.clone(), field, Part::Header));
            }
            headers.push((name.clone(), template));
        }

        if let Some(secs) = settings.timeout_secs
            && !(1..=MAX_TIMEOUT_SECS).contains(&secs)
        {
            errors.push(FieldError::new(
                at("timeout_secs"),
                format!("is {secs}; give 1 to {MAX_TIMEOUT_SECS} seconds"),
            ));
        }
        let failure = match settings.failure_pattern.as_deref().map(compile_pattern) {
            None => None,
            Some(Ok(regex)) => Some(regex),
            Some(Err(message)) => {
                errors.push(FieldError::new(at("failure_pattern"), message));
                None
            }
        };

        if settings.result_codes.len() > MAX_RESULT_CODES {
            errors.push(FieldError::new(
                at("result_codes"),
                format!(
                    "has {} results; at most {MAX_RESULT_CODES} are allowed (a dialer has far fewer)",
                    settings.result_codes.len()
                ),
            ));
        }
        let mut codes = BTreeMap::new();
        // The spelling each result was first given in, for the error about a second one.
        let mut spelled: BTreeMap<ResultKey, &str> = BTreeMap::new();
        for (result, code) in settings.result_codes.iter().take(MAX_RESULT_CODES) {
            let field = at(&format!("result_codes.{result}"));
            match ResultKey::normalise(result) {
                Err(e) => errors.push(FieldError::new(field, e.to_string())),
                Ok(key) => {
                    if let Some(first) = spelled.get(&key) {
                        errors.push(FieldError::new(
                            field,
                            format!("is the same result as {first:?} (results match in any spelling): keep one"),
                        ));
                    } else if code.trim().is_empty() {
                        errors.push(FieldError::new(
                            field,
                            "is empty: give the partner's code, or leave the result out so its calls are not sent",
                        ));
                    } else {
                        spelled.insert(key.clone(), result);
                        codes.insert(key, code.clone());
                    }
                }
            }
        }

        let sample_ctx = Value::from_serialize(sample_context());
        let sample_json = sample_context();
        for (template, field, part) in &compiled {
            match render_raw(&env, template, *part, &sample_ctx) {
                Ok(text) => match check_rendered(template, *part, settings.format, &text) {
                    Ok(()) => {}
                    Err(e) => errors.push(FieldError::new(
                        field.clone(),
                        format!("{} (rendering the sample call)", e.problem),
                    )),
                },
                Err(Failed::Engine(e)) => errors.push(FieldError::new(
                    field.clone(),
                    trial_message(&env, template, &e, &sample_json),
                )),
                Err(failed) => errors.push(FieldError::new(
                    field.clone(),
                    format!("{} (rendering the sample call)", failed.problem()),
                )),
            }
        }

        if !errors.is_empty() {
            return Err(errors);
        }
        let default_content_type =
            (!configures_content_type).then(|| settings.format.content_type());
        let mut template = HttpTemplate {
            settings: settings.clone(),
            env,
            headers,
            default_content_type,
            failure,
            codes,
            sample: RenderedRequest {
                method: settings.method,
                url: String::new(),
                headers: Vec::new(),
                body: String::new(),
            },
        };
        // The parts rendered and passed their checks above, so this cannot fail; the error
        // path stays a validation error rather than a panic all the same.
        match template.render(&sample_json) {
            Ok(sample) => template.sample = sample,
            Err(e) => return Err(vec![FieldError::new(at(&e.template), e.to_string())]),
        }
        Ok(template)
    }

    /// Renders one call; `ctx` is `{"call": {...}, "contact": {...}, "code": "..."}` as in
    /// [`sample_context`].
    pub fn render(&self, ctx: &serde_json::Value) -> Result<RenderedRequest, RenderError> {
        if let Some(path) = oversized_value(ctx, &mut String::new()) {
            return Err(RenderError {
                template: path,
                line: None,
                problem: RenderProblem::ValueTooLarge,
            });
        }
        let ctx = Value::from_serialize(ctx);
        let url = self.render_part(URL, Part::Url, &ctx)?;
        let body = self.render_part(BODY, Part::Body, &ctx)?;
        let mut headers = Vec::with_capacity(self.headers.len() + 1);
        if let Some(content_type) = self.default_content_type {
            headers.push(("Content-Type".to_owned(), content_type.to_owned()));
        }
        for (name, template) in &self.headers {
            headers.push((
                name.clone(),
                self.render_part(template, Part::Header, &ctx)?,
            ));
        }
        Ok(RenderedRequest {
            method: self.settings.method,
            url,
            headers,
            body,
        })
    }

    fn render_part(&self, template: &str, part: Part, ctx: &Value) -> Result<String, RenderError> {
        let text = render_raw(&self.env, template, part, ctx).map_err(|e| RenderError {
            template: template.to_owned(),
            line: e.line(),
            problem: e.problem(),
        })?;
        check_rendered(template, part, self.settings.format, &text)?;
        Ok(text)
    }

    /// Whether a 2xx answer's body is a failure all the same (matches `failure_pattern`).
    pub fn failure_matches(&self, body: &str) -> bool {
        self.failure
            .as_ref()
            .is_some_and(|regex| regex.is_match(body))
    }

    /// The partner's code for a call's result.
    pub fn code_for(&self, result: &ResultKey) -> Option<&str> {
        self.codes.get(result).map(String::as_str)
    }

    /// The request [`sample_context`] renders to.
    pub fn sample_request(&self) -> &RenderedRequest {
        &self.sample
    }

    /// The URL [`sample_context`] renders to; its scheme and host are the template's own, so
    /// the caller checks them (https, egress allow-list) here once rather than per call.
    pub fn sample_url(&self) -> &str {
        &self.sample.url
    }
}

/// The context templates are checked against when settings are saved, and the shape every
/// render gets: `call` and `contact` as [`super::payload::call_and_contact`] builds them,
/// and `code`, the partner's code for the call's result.
pub fn sample_context() -> serde_json::Value {
    let mut ctx = super::payload::sample();
    ctx["code"] = json!("COMPLET1");
    ctx
}

fn environment(format: BodyFormat) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    // Debug mode copies the context (personal data) into every error; errors here never
    // show it, so it would only cost time.
    env.set_debug(false);
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_fuel(Some(TEMPLATE_FUEL));
    let body = format.auto_escape();
    env.set_auto_escape_callback(move |name| match name {
        BODY => body,
        URL => AutoEscape::Custom(URL_ESCAPE),
        _ => AutoEscape::None,
    });
    env.set_formatter(format_value);
    env
}

/// minijinja's own formatter, plus percent-encoding for the `url` template.
fn format_value(out: &mut Output, state: &State, value: &Value) -> Result<(), minijinja::Error> {
    // A value the call does not have (no end time, no VAN id) prints as nothing, not as
    // `none`; a JSON body prints it as `null`.
    if value.is_none() && state.auto_escape() != AutoEscape::Json {
        return Ok(());
    }
    if state.auto_escape() != AutoEscape::Custom(URL_ESCAPE) {
        return minijinja::escape_formatter(out, state, value);
    }
    // Every value, escaped by a filter or not, is one URL component.
    for byte in value.to_string().bytes() {
        let written = if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.write_char(char::from(byte))
        } else {
            write!(out, "%{byte:02X}")
        };
        written.map_err(minijinja::Error::from)?;
    }
    Ok(())
}

/// Parses one template into the environment; false (with the error recorded) if it cannot.
fn add_template(
    env: &mut Environment<'static>,
    name: &str,
    source: &str,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> bool {
    if source.len() > MAX_TEMPLATE_BYTES {
        errors.push(FieldError::new(
            field,
            format!(
                "is {} bytes; a template may have at most {MAX_TEMPLATE_BYTES}",
                source.len()
            ),
        ));
        return false;
    }
    if let Err(message) = check_constructs(source) {
        errors.push(FieldError::new(field, message));
        return false;
    }
    match env.add_template_owned(name.to_owned(), source.to_owned()) {
        Ok(()) => true,
        Err(e) => {
            errors.push(FieldError::new(field, engine_message(&e)));
            false
        }
    }
}

/// Why a render stopped.
enum Failed {
    Engine(minijinja::Error),
    TooLarge(usize),
}

impl Failed {
    fn line(&self) -> Option<usize> {
        match self {
            Self::Engine(e) => e.line(),
            Self::TooLarge(_) => None,
        }
    }

    /// What went wrong, without minijinja's detail (it can quote values).
    fn problem(&self) -> RenderProblem {
        match self {
            Self::Engine(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => {
                RenderProblem::OutOfFuel
            }
            Self::Engine(e) => RenderProblem::Engine(e.kind().to_string()),
            Self::TooLarge(limit) => RenderProblem::TooLarge(*limit),
        }
    }
}

/// Output that refuses to grow past `limit` bytes: a render stops as soon as it would.
struct Capped {
    text: Vec<u8>,
    limit: usize,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + bytes.len() > self.limit {
            self.over = true;
            return Err(std::io::Error::other("rendered text over its cap"));
        }
        self.text.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn render_raw(
    env: &Environment<'static>,
    template: &str,
    part: Part,
    ctx: &Value,
) -> Result<String, Failed> {
    let limit = part.limit();
    let mut out = Capped {
        text: Vec::new(),
        limit,
        over: false,
    };
    let rendered = env
        .get_template(template)
        .and_then(|t| t.render_captured_to(ctx, &mut out).map(drop));
    if out.over {
        return Err(Failed::TooLarge(limit));
    }
    rendered.map_err(Failed::Engine)?;
    // Templates are text and values are strings: the output is UTF-8.
    String::from_utf8(out.text).map_err(|_| {
        Failed::Engine(minijinja::Error::new(
            minijinja::ErrorKind::BadSerialization,
            "output is not UTF-8",
        ))
    })
}

impl Part {
    /// The most a rendered part may be.
    fn limit(self) -> usize {
        match self {
            Part::Body => MAX_RENDERED_BODY_BYTES,
            Part::Url | Part::Header => MAX_RENDERED_LINE_BYTES,
        }
    }
}

fn check_rendered(
    template: &str,
    part: Part,
    format: BodyFormat,
    text: &str,
) -> Result<(), RenderError> {
    let fail = |problem| {
        Err(RenderError {
            template: template.to_owned(),
            line: None,
            problem,
        })
    };
    if text.len() > part.limit() {
        return fail(RenderProblem::TooLarge(part.limit()));
    }
    match part {
        Part::Url if text.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            fail(RenderProblem::UrlControl)
        }
        Part::Url if has_dot_segment(text) => fail(RenderProblem::UrlDotSegment),
        Part::Header if text.chars().any(|c| c != '\t' && c.is_control()) => {
            fail(RenderProblem::HeaderControl)
        }
        Part::Body => match format {
            BodyFormat::Json => match serde_json::from_str::<serde::de::IgnoredAny>(text) {
                Ok(_) => Ok(()),
                Err(e) => fail(RenderProblem::InvalidJson(e.to_string())),
            },
            BodyFormat::Xml => match roxmltree::Document::parse(text) {
                Ok(_) => Ok(()),
                Err(e) => {
                    let at = e.pos();
                    fail(RenderProblem::InvalidXml(at.row, at.col))
                }
            },
            BodyFormat::Text => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whether a URL's path (after the host, before `?` or `#`) has a `.` or `..` segment, in
/// any spelling a URL parser reads as one (`%2e`, `.%2E`, …).
fn has_dot_segment(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let Some(slash) = rest.find('/') else {
        return false;
    };
    let path = &rest[slash..];
    let path = &path[..path.find(['?', '#']).unwrap_or(path.len())];
    path.split(['/', '\\']).any(|segment| {
        let lower = segment.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".."
    })
}

/// The path (`contact.first_name`) of the first string in `value` over [`MAX_VALUE_BYTES`].
fn oversized_value(value: &serde_json::Value, path: &mut String) -> Option<String> {
    match value {
        serde_json::Value::String(s) if s.len() > MAX_VALUE_BYTES => Some(path.clone()),
        serde_json::Value::Object(map) => map.iter().find_map(|(key, v)| {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            let found = oversized_value(v, path);
            path.truncate(len);
            found
        }),
        serde_json::Value::Array(items) => items.iter().find_map(|v| oversized_value(v, path)),
        _ => None,
    }
}

/// The template's constructs, read before it is compiled: only [`STATEMENTS`], only
/// [`FILTERS`], no function or macro call, no `*` or `**`. A syntax error is left to the
/// compiler, which names it better.
fn check_constructs(source: &str) -> Result<(), String> {
    use minijinja::machinery::{Token, WhitespaceConfig, tokenize};
    /// What the last tokens were, as far as the rules care.
    #[derive(Clone, Copy, PartialEq)]
    enum Seen<'a> {
        BlockStart,
        Pipe,
        Dot,
        Is,
        IsNot,
        Name(&'a str),
        Other,
    }
    let mut last = Seen::Other;
    let mut before = Seen::Other;
    let mut concatenations = 0;
    let tokens = tokenize(
        source,
        false,
        minijinja::syntax::SyntaxConfig,
        WhitespaceConfig::default(),
    );
    for token in tokens {
        let Ok((token, span)) = token else {
            return Ok(());
        };
        let line = span.start_line;
        let seen = match token {
            Token::BlockStart => Seen::BlockStart,
            Token::Pipe => Seen::Pipe,
            Token::Dot => Seen::Dot,
            Token::Tilde | Token::Plus => {
                concatenations += 1;
                if concatenations > MAX_CONCATENATIONS {
                    return Err(format!(
                        "line {line}: more than {MAX_CONCATENATIONS} `~` and `+` in one template"
                    ));
                }
                Seen::Other
            }
            Token::Mul | Token::Pow => {
                return Err(format!(
                    "line {line}: `*` and `**` are not allowed in a template (they build values of any size)"
                ));
            }
            Token::Ident("recursive") => {
                return Err(format!(
                    "line {line}: recursive loops are not allowed in a template"
                ));
            }
            Token::Ident(name) => match last {
                Seen::BlockStart if !STATEMENTS.contains(&name) => {
                    return Err(if name == "autoescape" {
                        format!(
                            "line {line}: {{% autoescape %}} is not allowed: values are always escaped for where they land"
                        )
                    } else {
                        format!(
                            "line {line}: {{% {name} %}} is not allowed: a template may use {}",
                            STATEMENTS.join(", ")
                        )
                    });
                }
                Seen::Pipe if name == "safe" => {
                    return Err(format!(
                        "line {line}: `| safe` is not allowed: values are always escaped for where they land"
                    ));
                }
                Seen::Pipe if !FILTERS.contains(&name) => {
                    return Err(format!(
                        "line {line}: the filter `{name}` is not allowed: a template may use {}",
                        FILTERS.join(", ")
                    ));
                }
                Seen::Is if name == "not" => Seen::IsNot,
                _ if name == "is" => Seen::Is,
                _ => Seen::Name(name),
            },
            Token::ParenOpen => {
                // A name before `(` calls something unless it is a filter's (after `|`), a
                // test's (after `is`), a value's method (after `.`) or a keyword.
                if let Seen::Name(name) = last
                    && !KEYWORDS.contains(&name)
                    && !matches!(before, Seen::Pipe | Seen::Dot | Seen::Is | Seen::IsNot)
                {
                    return Err(format!(
                        "line {line}: calling `{name}(…)` is not allowed: a template has no functions or macros"
                    ));
                }
                Seen::Other
            }
            _ => Seen::Other,
        };
        before = last;
        last = seen;
    }
    Ok(())
}

/// `line 3: unexpected end of input, …` for a template's own mistakes (no call data in them).
fn engine_message(e: &minijinja::Error) -> String {
    let what = e
        .detail()
        .map_or_else(|| e.kind().to_string(), str::to_owned);
    match e.line() {
        Some(line) => format!("line {line}: {what}"),
        None => what,
    }
}

/// The trial render's error, naming the variables the sample call does not have: the
/// sample is not personal data, so minijinja's detail may be shown.
fn trial_message(
    env: &Environment<'static>,
    template: &str,
    e: &minijinja::Error,
    sample: &serde_json::Value,
) -> String {
    let mut message = format!("{} (rendering the sample call", engine_message(e));
    if e.kind() == minijinja::ErrorKind::UndefinedError
        && let Ok(tmpl) = env.get_template(template)
    {
        let globals: BTreeSet<&str> = env.globals().map(|(name, _)| name).collect();
        let missing: BTreeSet<String> = tmpl
            .undeclared_variables(true)
            .into_iter()
            .filter(|path| {
                let root = path.split('.').next().unwrap_or_default();
                !globals.contains(root) && lookup(sample, path).is_none()
            })
            .collect();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(String::as_str).collect();
            let _ = write!(
                message,
                "; not in a call's context: {} — see the sample context for what is",
                names.join(", ")
            );
        }
    }
    message.push(')');
    message
}

fn lookup<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

/// The scheme, host and port must be literal: a template choosing the host could send a
/// call's personal data anywhere.
fn check_url_host(url: &str) -> Result<(), String> {
    const HOST_RULE: &str =
        "the host must be written out, templates may fill only the path and query";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "must start with a scheme and host, e.g. https://esb.example.org/…; {HOST_RULE}"
        ));
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    // Backslash is not an end here although WHATWG parsers read it as `/`: other parsers do
    // not, and a template after it would then be part of their host.
    let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let host = &rest[..host_end];
    if !scheme_ok || host.contains('{') {
        return Err(HOST_RULE.to_owned());
    }
    if host.is_empty() {
        return Err(format!("has no host; {HOST_RULE}"));
    }
    Ok(())
}

fn check_header_name(name: &str) -> Result<(), String> {
    if ["{{", "{%", "{#"].iter().any(|open| name.contains(open)) {
        return Err("header names must be written out; only values may be templates".to_owned());
    }
    if name.len() > MAX_HEADER_NAME {
        return Err(format!(
            "is {} characters long; a header name may have at most {MAX_HEADER_NAME}",
            name.len()
        ));
    }
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(
            "is not a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)".to_owned(),
        );
    }
    if FORBIDDEN_HEADERS
        .iter()
        .any(|forbidden| name.eq_ignore_ascii_case(forbidden))
    {
        return Err(format!(
            "{name} is set by the HTTP client from the request itself and cannot be configured"
        ));
    }
    Ok(())
}

fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("is not a usable regular expression: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SOAP: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:acc="http://example.org/acc">
  <soapenv:Body>
    <acc:submitCall>
      <header><emi>{{ call.id }}</emi><timestamp>{{ call.ended_at }}</timestamp><source>CALLSYNC</source></header>
      <data><csr><id>{{ contact.van_id }}</id><outcome_code>{{ code }}</outcome_code>
        <activity_details>{{ contact.first_name }} {{ contact.last_name }}</activity_details>
        <activity_date>{{ call.local_date }}</activity_date></csr></data>
    </acc:submitCall>
  </soapenv:Body>
</soapenv:Envelope>"#;

    fn settings(format: BodyFormat, body: &str) -> HttpTemplateSettings {
        HttpTemplateSettings {
            method: Method::Post,
            url: "https://esb.example.org/services/calls".to_owned(),
            headers: BTreeMap::new(),
            body: body.to_owned(),
            format,
            result_codes: BTreeMap::new(),
            failure_pattern: None,
            secret_name: None,
            timeout_secs: None,
        }
    }

    fn ctx_with(first_name: &str) -> serde_json::Value {
        let mut ctx = sample_context();
        ctx["contact"]["first_name"] = json!(first_name);
        ctx
    }

    fn compile_err(settings: &HttpTemplateSettings) -> Vec<FieldError> {
        HttpTemplate::compile(settings, "destinations[0]").unwrap_err()
    }

    #[test]
    fn xml_body_escapes_values_exactly_once() {
        let mut s = settings(BodyFormat::Xml, SOAP);
        s.headers
            .insert("SOAPAction".to_owned(), "submitCall".to_owned());
        let template = HttpTemplate::compile(&s, "destinations[0]").unwrap();
        let ctx = ctx_with("O'Brien & Sons <x> \"Zoë\"");
        let request = template.render(&ctx).unwrap();
        assert!(
            request.body.contains(
                "<activity_details>O&#x27;Brien &amp; Sons &lt;x&gt; &quot;Zoë&quot; Núñez</activity_details>"
            ),
            "{}",
            request.body
        );
        assert!(!request.body.contains("&amp;lt;") && !request.body.contains("&amp;amp;"));
        // The template's own markup is not escaped, and numbers print plainly.
        assert!(request.body.starts_with("<?xml version=\"1.0\""));
        assert!(request.body.contains("<id>100234567</id>"));
        assert!(
            request
                .body
                .contains("<outcome_code>COMPLET1</outcome_code>")
        );
        assert_eq!(
            request.headers,
            vec![
                (
                    "Content-Type".to_owned(),
                    "text/xml; charset=utf-8".to_owned()
                ),
                ("SOAPAction".to_owned(), "submitCall".to_owned()),
            ]
        );
        assert_eq!(request.method, Method::Post);
    }

    #[test]
    fn json_body_renders_values_as_json_literals() {
        let body = "{\n  \"name\": {{ contact.first_name }},\n  \"van_id\": {{ contact.van_id }},\n  \"code\": {{ code }}\n}";
        let template = HttpTemplate::compile(&settings(BodyFormat::Json, body), "d").unwrap();
        let name = "Say \"hi\"\nthen </script> leave";
        let request = template.render(&ctx_with(name)).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(
            parsed,
            json!({"name": name, "van_id": 100_234_567, "code": "COMPLET1"})
        );
        assert_eq!(
            request.headers,
            vec![("Content-Type".to_owned(), "application/json".to_owned())]
        );
    }

    #[test]
    fn json_body_with_quoted_values_is_refused_at_compile() {
        let body = r#"{"name": "{{ contact.first_name }}"}"#;
        let errors = compile_err(&settings(BodyFormat::Json, body));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "destinations[0].body");
        assert!(
            errors[0].message.contains("valid JSON"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn undefined_variable_is_refused_at_compile_with_field_and_line() {
        let body = "<a>{{ call.id }}</a>\n<b>{{ call.nope }}</b>";
        let errors = compile_err(&settings(BodyFormat::Xml, body));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "destinations[0].body");
        assert!(
            errors[0].message.starts_with("line 2: "),
            "{}",
            errors[0].message
        );
        assert!(
            errors[0].message.contains("undefined"),
            "{}",
            errors[0].message
        );
        assert!(
            errors[0].message.contains("call.nope"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn syntax_error_names_the_line() {
        let body = "<a>\n<b>{{ call.id }}</b>\n<c>{{ call.id </c>";
        let errors = compile_err(&settings(BodyFormat::Xml, body));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "destinations[0].body");
        assert!(
            errors[0].message.starts_with("line 3: "),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn errors_in_several_fields_are_reported_together() {
        let mut s = settings(BodyFormat::Text, "{{ call.id }");
        s.url = "https://{{ call.service }}.example.org/".to_owned();
        s.headers
            .insert("X-Oops".to_owned(), "{{ contact.nope }}".to_owned());
        s.timeout_secs = Some(0);
        s.failure_pattern = Some("(unclosed".to_owned());
        let errors = compile_err(&s);
        let fields: BTreeSet<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            BTreeSet::from([
                "destinations[0].url",
                "destinations[0].body",
                "destinations[0].headers.X-Oops",
                "destinations[0].timeout_secs",
                "destinations[0].failure_pattern",
            ])
        );
    }

    #[test]
    fn templated_scheme_host_or_port_is_refused() {
        for url in [
            "https://{{ call.service }}.example.org/calls",
            "https://esb.example.org{{ call.id }}",
            "https://esb.example.org:{{ code }}/calls",
            "https://{% if code %}a{% endif %}.example.org/",
            "{{ call.source }}://esb.example.org/",
            "{{ 'https://esb.example.org' }}/calls",
            "https://esb.example.org\\{{ call.id }}",
            "esb.example.org/{{ call.id }}",
            "https:///{{ call.id }}",
        ] {
            let mut s = settings(BodyFormat::Text, "x");
            s.url = url.to_owned();
            let errors = compile_err(&s);
            assert!(
                errors.iter().any(|e| e.field == "destinations[0].url"
                    && (e.message.contains("host must be written out"))),
                "{url}: {errors:?}"
            );
        }
    }

    #[test]
    fn url_values_are_percent_encoded_and_the_sample_url_is_available() {
        let mut s = settings(BodyFormat::Text, "x");
        s.url = "http://esb.example.org/calls/{{ call.id }}?name={{ contact.first_name }}&n={{ contact.van_id }}"
            .to_owned();
        let template = HttpTemplate::compile(&s, "d").unwrap();
        // http is the caller's decision (egress rules); compile only reports what it renders to.
        assert_eq!(
            template.sample_url(),
            "http://esb.example.org/calls/cdr-2026-11-03-000123?name=Ana&n=100234567"
        );
        let request = template.render(&ctx_with("A/b?c=d&e f#é")).unwrap();
        assert_eq!(
            request.url,
            "http://esb.example.org/calls/cdr-2026-11-03-000123?name=A%2Fb%3Fc%3Dd%26e%20f%23%C3%A9&n=100234567"
        );

        s.url = "https://esb.example.org/calls".to_owned();
        let template = HttpTemplate::compile(&s, "d").unwrap();
        assert_eq!(template.sample_url(), "https://esb.example.org/calls");
        assert_eq!(template.sample_request().body, "x");
    }

    #[test]
    fn header_value_with_a_line_break_is_a_render_error_without_the_value() {
        let mut s = settings(BodyFormat::Text, "x");
        s.headers
            .insert("X-Caller".to_owned(), "{{ contact.first_name }}".to_owned());
        let template = HttpTemplate::compile(&s, "d").unwrap();
        let err = template.render(&ctx_with("Ana\r\nX-Evil: 1")).unwrap_err();
        assert_eq!(err.template, "headers.X-Caller");
        assert_eq!(err.problem, RenderProblem::HeaderControl);
        assert!(!err.to_string().contains("Evil"), "{err}");
    }

    #[test]
    fn header_values_with_accents_are_accepted_and_sent_as_utf8() {
        let mut s = settings(BodyFormat::Text, "x");
        s.headers
            .insert("X-Name".to_owned(), "{{ contact.last_name }}".to_owned());
        // The sample's "Núñez" no longer stands in the way of a real header.
        let template = HttpTemplate::compile(&s, "destinations[0]").unwrap();
        let request = template.render(&ctx_with("Zoë")).unwrap();
        assert_eq!(
            request.headers[1],
            ("X-Name".to_owned(), "Núñez".to_owned())
        );
    }

    #[test]
    fn header_names_are_checked() {
        for (name, needle) in [
            ("{{ code }}", "written out"),
            ("X Bad", "valid HTTP header name"),
            ("", "valid HTTP header name"),
            ("Host", "set by the HTTP client"),
            ("content-length", "set by the HTTP client"),
            ("Transfer-Encoding", "set by the HTTP client"),
        ] {
            let mut s = settings(BodyFormat::Text, "x");
            s.headers.insert(name.to_owned(), "v".to_owned());
            let errors = compile_err(&s);
            assert_eq!(errors.len(), 1, "{name}: {errors:?}");
            assert_eq!(errors[0].field, format!("destinations[0].headers.{name}"));
            assert!(
                errors[0].message.contains(needle),
                "{name}: {}",
                errors[0].message
            );
        }

        let mut s = settings(BodyFormat::Text, "x");
        s.headers.insert("X-A".to_owned(), "1".to_owned());
        s.headers.insert("x-a".to_owned(), "2".to_owned());
        assert!(compile_err(&s)[0].message.contains("twice"));

        let mut s = settings(BodyFormat::Text, "x");
        for i in 0..=MAX_HEADERS {
            s.headers.insert(format!("X-{i}"), "v".to_owned());
        }
        assert_eq!(compile_err(&s)[0].field, "destinations[0].headers");
    }

    #[test]
    fn configured_content_type_replaces_the_default() {
        let mut s = settings(BodyFormat::Xml, "<a/>");
        s.headers.insert(
            "content-type".to_owned(),
            "application/soap+xml; charset=utf-8".to_owned(),
        );
        let template = HttpTemplate::compile(&s, "d").unwrap();
        assert_eq!(
            template.sample_request().headers,
            vec![(
                "content-type".to_owned(),
                "application/soap+xml; charset=utf-8".to_owned()
            )]
        );
        let text = HttpTemplate::compile(&settings(BodyFormat::Text, "x"), "d").unwrap();
        assert_eq!(
            text.sample_request().headers,
            vec![(
                "Content-Type".to_owned(),
                "text/plain; charset=utf-8".to_owned()
            )]
        );
    }

    #[test]
    fn failure_pattern_matches_a_soap_fault() {
        let mut s = settings(BodyFormat::Xml, SOAP);
        s.failure_pattern = Some("<(soapenv|soap|S):Fault>".to_owned());
        let template = HttpTemplate::compile(&s, "d").unwrap();
        let fault = "<soapenv:Envelope><soapenv:Body><soapenv:Fault><faultcode>soapenv:Server</faultcode></soapenv:Fault></soapenv:Body></soapenv:Envelope>";
        assert!(template.failure_matches(fault));
        assert!(!template.failure_matches(
            "<soapenv:Envelope><soapenv:Body><ok/></soapenv:Body></soapenv:Envelope>"
        ));
        let without = HttpTemplate::compile(&settings(BodyFormat::Xml, SOAP), "d").unwrap();
        assert!(!without.failure_matches(fault));
    }

    #[test]
    fn oversized_pattern_and_template_are_refused() {
        let mut s = settings(BodyFormat::Text, "x");
        s.failure_pattern = Some("\\w{1000}\\w{1000}\\w{1000}".to_owned());
        assert_eq!(compile_err(&s)[0].field, "destinations[0].failure_pattern");

        let s = settings(BodyFormat::Text, &"x".repeat(MAX_TEMPLATE_BYTES + 1));
        assert_eq!(compile_err(&s)[0].field, "destinations[0].body");
    }

    #[test]
    fn timeout_must_be_one_to_thirty_seconds() {
        for (secs, ok) in [(0, false), (1, true), (30, true), (31, false)] {
            let mut s = settings(BodyFormat::Text, "x");
            s.timeout_secs = Some(secs);
            match HttpTemplate::compile(&s, "destinations[2]") {
                Ok(_) => assert!(ok, "{secs}"),
                Err(errors) => {
                    assert!(!ok, "{secs}");
                    assert_eq!(errors[0].field, "destinations[2].timeout_secs");
                }
            }
        }
    }

    #[test]
    fn settings_deserialize_with_defaults_and_refuse_unknown_fields() {
        let doc = json!({
            "url": "https://esb.example.org/calls",
            "body": "{{ code }}",
            "format": "text",
            "result_codes": {"strong_support": "COMPLET1"},
        });
        let s: HttpTemplateSettings = serde_json::from_value(doc.clone()).unwrap();
        assert_eq!(s.method, Method::Post);
        assert!(s.headers.is_empty() && s.failure_pattern.is_none() && s.timeout_secs.is_none());

        let mut put = doc.clone();
        put["method"] = json!("PUT");
        let s: HttpTemplateSettings = serde_json::from_value(put).unwrap();
        assert_eq!(s.method, Method::Put);

        let mut unknown = doc.clone();
        unknown["verify_tls"] = json!(false);
        let err = serde_json::from_value::<HttpTemplateSettings>(unknown).unwrap_err();
        assert!(err.to_string().contains("verify_tls"), "{err}");

        let mut get = doc;
        get["method"] = json!("GET");
        assert!(serde_json::from_value::<HttpTemplateSettings>(get).is_err());
    }

    #[test]
    fn result_codes_match_any_spelling_of_a_result() {
        let key = |r: &str| ResultKey::normalise(r).unwrap();
        let mut s = settings(BodyFormat::Text, "{{ code }}");
        s.result_codes
            .insert("Agent Cust 1 (SS)".to_owned(), "COMPLET1".to_owned());
        s.result_codes
            .insert("Wrong Number".to_owned(), "BADNUM".to_owned());
        let template = HttpTemplate::compile(&s, "d").unwrap();
        assert_eq!(template.code_for(&key("AGENT - CUST 1")), Some("COMPLET1"));
        assert_eq!(template.code_for(&key("wrong number")), Some("BADNUM"));
        assert_eq!(template.code_for(&key("Busy")), None);

        s.result_codes
            .insert("WRONG-NUMBER".to_owned(), "X".to_owned());
        s.result_codes.insert("Busy".to_owned(), " ".to_owned());
        let errors = compile_err(&s);
        let fields: BTreeSet<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            BTreeSet::from([
                "destinations[0].result_codes.Busy",
                "destinations[0].result_codes.Wrong Number"
            ]),
            "{errors:?}"
        );
    }

    #[test]
    fn values_a_call_lacks_print_as_nothing_or_as_json_null() {
        let mut ctx = sample_context();
        ctx["call"]["ended_at"] = serde_json::Value::Null;
        let xml = HttpTemplate::compile(
            &settings(BodyFormat::Xml, "<end>{{ call.ended_at }}</end>"),
            "d",
        )
        .unwrap();
        assert_eq!(xml.render(&ctx).unwrap().body, "<end></end>");
        let json = HttpTemplate::compile(
            &settings(BodyFormat::Json, "{\"end\": {{ call.ended_at }}}"),
            "d",
        )
        .unwrap();
        assert_eq!(json.render(&ctx).unwrap().body, "{\"end\": null}");
    }

    #[test]
    fn render_error_names_template_and_line_but_not_values() {
        let template = HttpTemplate::compile(
            &settings(BodyFormat::Text, "a\n{{ contact.van_id + 1 }}"),
            "d",
        )
        .unwrap();
        let mut ctx = sample_context();
        ctx["contact"]["van_id"] = json!("secret-value");
        let err = template.render(&ctx).unwrap_err();
        assert_eq!(err.template, "body");
        assert_eq!(err.line, Some(2));
        assert!(!err.to_string().contains("secret-value"), "{err}");
        assert!(err.to_string().starts_with("body, line 2: "), "{err}");

        let mut ctx = sample_context();
        ctx.as_object_mut().unwrap().remove("code");
        let template =
            HttpTemplate::compile(&settings(BodyFormat::Text, "{{ code }}"), "d").unwrap();
        assert_eq!(template.render(&ctx).unwrap_err().template, "body");
    }

    /// A template that compiles, rendering a call whose first name is `first_name`.
    fn render_with(
        format: BodyFormat,
        body: &str,
        first_name: &str,
    ) -> Result<RenderedRequest, RenderError> {
        HttpTemplate::compile(&settings(format, body), "d")
            .unwrap()
            .render(&ctx_with(first_name))
    }

    #[test]
    fn call_data_cannot_change_the_shape_of_an_xml_or_json_body() {
        let xml = render_with(
            BodyFormat::Xml,
            "<n>{{ contact.first_name }}</n>",
            "</n><admin>true</admin><n>",
        )
        .unwrap();
        assert_eq!(
            xml.body,
            "<n>&lt;&#x2f;n&gt;&lt;admin&gt;true&lt;&#x2f;admin&gt;&lt;n&gt;</n>"
        );
        let json = render_with(
            BodyFormat::Json,
            "{\"n\": {{ contact.first_name }}}",
            "x\", \"admin\": true, \"y\": \"",
        )
        .unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&json.body).unwrap();
        assert_eq!(parsed.as_object().unwrap().len(), 1, "{}", json.body);
        assert_eq!(parsed["n"], "x\", \"admin\": true, \"y\": \"");
    }

    #[test]
    fn nothing_turns_escaping_off() {
        for (body, needle) in [
            (
                "<n>{{ contact.first_name | safe }}</n>",
                "`| safe` is not allowed",
            ),
            (
                "<n>{{ contact.first_name|safe }}</n>",
                "`| safe` is not allowed",
            ),
            (
                "{% autoescape false %}<n>{{ contact.first_name }}</n>{% endautoescape %}",
                "autoescape",
            ),
            (
                "{%- autoescape false -%}<n/>{% endautoescape %}",
                "autoescape",
            ),
            (
                "<n>{{ contact.first_name | tojson }}</n>",
                "the filter `tojson` is not allowed",
            ),
            (
                "{% filter upper %}<n/>{% endfilter %}",
                "{% filter %} is not allowed",
            ),
            (
                "{% macro m(x) %}{{ x }}{% endmacro %}<n>{{ m(1) }}</n>",
                "{% macro %} is not allowed",
            ),
        ] {
            let errors = compile_err(&settings(BodyFormat::Xml, body));
            assert_eq!(errors[0].field, "destinations[0].body", "{body}");
            assert!(
                errors[0].message.contains(needle),
                "{body}: {}",
                errors[0].message
            );
            assert!(
                errors[0].message.starts_with("line 1: "),
                "{}",
                errors[0].message
            );
        }
        // Filters that keep values escaped are fine, and so is `is not` with a test.
        let ok = "<r><n>{{ contact.first_name | upper | e }}</n>{% if call.id is not none and code is string %}<c>{{ code | default('x') | trim }}</c>{% endif %}</r>";
        if let Err(errors) = HttpTemplate::compile(&settings(BodyFormat::Xml, ok), "d") {
            panic!("{errors:?}");
        }
    }

    #[test]
    fn a_url_value_cannot_climb_or_leave_the_partners_path() {
        let mut s = settings(BodyFormat::Text, "x");
        s.url = "https://esb.example.org/api/calls/{{ contact.first_name }}/activity".to_owned();
        let template = HttpTemplate::compile(&s, "d").unwrap();
        for name in ["..", "."] {
            let err = template.render(&ctx_with(name)).unwrap_err();
            assert_eq!(err.template, "url", "{name}");
            assert_eq!(err.problem, RenderProblem::UrlDotSegment, "{name}");
        }
        // A value with slashes or percent signs stays one segment; dots inside a name are
        // harmless.
        let ok = template.render(&ctx_with("%2e%2E")).unwrap();
        assert_eq!(
            ok.url,
            "https://esb.example.org/api/calls/%252e%252E/activity"
        );
        let ok = template.render(&ctx_with("../../admin")).unwrap();
        assert_eq!(
            ok.url,
            "https://esb.example.org/api/calls/..%2F..%2Fadmin/activity"
        );
        let ok = template.render(&ctx_with("J.R.")).unwrap();
        assert_eq!(ok.url, "https://esb.example.org/api/calls/J.R./activity");
        // An escaping filter does not make a value part of the URL's structure.
        s.url = "https://esb.example.org/api/calls/{{ contact.first_name | lower }}".to_owned();
        let template = HttpTemplate::compile(&s, "d").unwrap();
        assert_eq!(
            template.render(&ctx_with("A/B")).unwrap().url,
            "https://esb.example.org/api/calls/a%2Fb"
        );
    }

    #[test]
    fn a_body_that_breaks_on_a_real_call_is_an_error_naming_the_template() {
        // The sample passes; another call renders what no partner could parse.
        let guard = "{% if call.id != 'cdr-2026-11-03-000123' %}<oops>{% endif %}<a/>";
        let xml = HttpTemplate::compile(&settings(BodyFormat::Xml, guard), "d").unwrap();
        let mut ctx = sample_context();
        ctx["call"]["id"] = json!("another");
        let err = xml.render(&ctx).unwrap_err();
        assert_eq!(err.template, "body");
        assert!(
            matches!(err.problem, RenderProblem::InvalidXml(1, _)),
            "{err}"
        );
        let guard = "{% if call.id != 'cdr-2026-11-03-000123' %}{{ '{' }}{% endif %}{}";
        let json_body = HttpTemplate::compile(&settings(BodyFormat::Json, guard), "d").unwrap();
        let err = json_body.render(&ctx).unwrap_err();
        assert!(
            matches!(err.problem, RenderProblem::InvalidJson(_)),
            "{err}"
        );
    }

    #[test]
    fn templates_that_could_build_values_of_any_size_are_refused_when_saved() {
        for (body, needle) in [
            ("{% set s = 'x' %}{{ s }}", "{% set %} is not allowed"),
            ("{{ 'x' * 50000000 }}", "`*` and `**`"),
            ("{{ 10 ** 100 }}", "`*` and `**`"),
            (
                "{% for i in range(100000) %}x{% endfor %}",
                "calling `range(…)`",
            ),
            ("{{ namespace(s='x') }}", "calling `namespace(…)`"),
            (
                "{{ contact.first_name | indent(100000000) }}",
                "the filter `indent`",
            ),
            (
                "{{ contact.first_name | replace('', contact.last_name) }}",
                "the filter `replace`",
            ),
            (
                "{{ contact | map('string') | join('x') }}",
                "the filter `map`",
            ),
            (
                "{% for c in contact recursive %}{{ loop(c) }}{% endfor %}",
                "recursive loops",
            ),
            (
                "{% with s = 'x' %}{{ s }}{% endwith %}",
                "{% with %} is not allowed",
            ),
            ("{% include 'body' %}", "{% include %} is not allowed"),
        ] {
            let errors = compile_err(&settings(BodyFormat::Text, body));
            assert!(
                errors[0].message.contains(needle),
                "{body}: {}",
                errors[0].message
            );
        }
    }

    #[test]
    fn values_too_long_to_render_and_endless_concatenation_are_refused() {
        let template = HttpTemplate::compile(
            &settings(
                BodyFormat::Text,
                "{{ contact.first_name ~ contact.last_name }}",
            ),
            "d",
        )
        .unwrap();
        assert!(
            template
                .render(&ctx_with(&"a".repeat(MAX_VALUE_BYTES)))
                .is_ok()
        );
        let err = template
            .render(&ctx_with(&"a".repeat(MAX_VALUE_BYTES + 1)))
            .unwrap_err();
        assert_eq!(err.template, "contact.first_name");
        assert_eq!(err.problem, RenderProblem::ValueTooLarge);
        assert!(!err.to_string().contains("aaaa"), "{err}");

        let joined = |n: usize| {
            format!(
                "{{{{ {} }}}}",
                vec!["contact.first_name"; n + 1].join(" ~ ")
            )
        };
        assert!(
            HttpTemplate::compile(
                &settings(BodyFormat::Text, &joined(MAX_CONCATENATIONS)),
                "d"
            )
            .is_ok()
        );
        let errors = compile_err(&settings(BodyFormat::Text, &joined(MAX_CONCATENATIONS + 1)));
        assert!(
            errors[0].message.contains("more than 256"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn every_render_runs_on_a_budget_of_steps_and_output() {
        // Loops over a call's values: fine for a name, stopped for a long one.
        let body = "{% for a in contact.first_name %}{% for b in contact.first_name %}{% for c in contact.first_name %}.{% endfor %}{% endfor %}{% endfor %}";
        let template = HttpTemplate::compile(&settings(BodyFormat::Text, body), "d").unwrap();
        assert_eq!(template.render(&ctx_with("Ana")).unwrap().body.len(), 27);
        let err = template.render(&ctx_with(&"a".repeat(200))).unwrap_err();
        assert_eq!(err.problem, RenderProblem::OutOfFuel, "{err}");
        assert!(err.to_string().contains("steps"), "{err}");

        // Output stops at the part's cap, however it would grow.
        let big = format!(
            "{{% for a in contact.first_name %}}{}{{% endfor %}}",
            "x".repeat(60_000)
        );
        let template = HttpTemplate::compile(&settings(BodyFormat::Text, &big), "d").unwrap();
        let err = template.render(&ctx_with(&"a".repeat(100))).unwrap_err();
        assert_eq!(
            err.problem,
            RenderProblem::TooLarge(MAX_RENDERED_BODY_BYTES)
        );
        // …and the sample is held to the same budget when the settings are saved.
        let mut s = settings(BodyFormat::Text, "x");
        s.url = format!(
            "https://esb.example.org/{{% for a in contact.last_name %}}{}{{% endfor %}}",
            "y".repeat(4_000)
        );
        let errors = compile_err(&s);
        assert_eq!(errors[0].field, "destinations[0].url");
        assert!(
            errors[0].message.contains("over 8192 bytes"),
            "{}",
            errors[0].message
        );
    }
}
