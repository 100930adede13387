//! The shapes VAN answers with: the JSON error envelope, JSON bodies with VAN's content type,
//! and the IIS HTML pages some failures produce instead of JSON.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub(crate) const JSON_UTF8: &str = "application/json; charset=utf-8";

/// A JSON body with the content type VAN sends.
pub(crate) fn json(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
    response
}

pub(crate) fn html(status: StatusCode, body: &'static str) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    response
}

/// One entry of VAN's `{"errors":[…]}` envelope, with the status it is sent with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VanError {
    pub status: StatusCode,
    pub code: &'static str,
    pub text: String,
    pub properties: Vec<String>,
    pub reference_code: Option<String>,
}

impl VanError {
    pub(crate) fn invalid(text: impl Into<String>, property: Option<String>) -> VanError {
        VanError {
            status: StatusCode::BAD_REQUEST,
            code: "INVALID_PARAMETER",
            text: text.into(),
            properties: property.into_iter().collect(),
            reference_code: None,
        }
    }

    pub(crate) fn not_found() -> VanError {
        VanError {
            status: StatusCode::NOT_FOUND,
            code: "NOT_FOUND",
            text: "The requested resource could not be found.".into(),
            properties: Vec::new(),
            reference_code: None,
        }
    }

    pub(crate) fn unauthorized() -> VanError {
        VanError {
            status: StatusCode::UNAUTHORIZED,
            code: "UNAUTHORIZED",
            text: "Invalid Database Mode".into(),
            properties: Vec::new(),
            reference_code: None,
        }
    }

    pub(crate) fn rate_limited(wait_ms: u64) -> VanError {
        VanError {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "429",
            text: format!("Rate limit exceeded. Try again in {wait_ms} ms."),
            properties: Vec::new(),
            reference_code: None,
        }
    }

    pub(crate) fn server_error(reference_code: String) -> VanError {
        VanError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: "INTERNAL_SERVER_ERROR",
            text: "An unknown error occurred".into(),
            properties: Vec::new(),
            reference_code: Some(reference_code),
        }
    }
}

impl IntoResponse for VanError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "text": self.text });
        if !self.properties.is_empty() {
            error["properties"] = json!(self.properties);
        }
        if let Some(reference_code) = self.reference_code {
            error["referenceCode"] = json!(reference_code);
        }
        json(self.status, &json!({ "errors": [error] }))
    }
}

/// What IIS answers for a path id that is not an integer in range, or a route that does not exist.
pub(crate) fn iis_not_found() -> Response {
    html(StatusCode::NOT_FOUND, IIS_404)
}

pub(crate) fn iis_bad_request() -> Response {
    html(StatusCode::BAD_REQUEST, IIS_400)
}

/// The raw ASP.NET error object some 500s carry instead of the envelope.
pub(crate) fn asp_net_error() -> Response {
    json(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({
            "message": "An error has occurred.",
            "exceptionMessage": "Object reference not set to an instance of an object.",
            "exceptionType": "System.NullReferenceException",
            "stackTrace": "   at Van.Api.Controllers.PeopleController.PostCanvassResponses(Int32 vanId, CanvassResponsesRequest request)",
        }),
    )
}

const IIS_404: &str = r#"<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"/>
<title>404 - File or directory not found.</title>
</head>
<body>
<div id="header"><h1>Server Error</h1></div>
<div id="content">
 <div class="content-container"><fieldset>
  <h2>404 - File or directory not found.</h2>
  <h3>The resource you are looking for might have been removed, had its name changed, or is temporarily unavailable.</h3>
 </fieldset></div>
</div>
</body>
</html>
"#;

const IIS_400: &str = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN""http://www.w3.org/TR/html4/strict.dtd">
<HTML><HEAD><TITLE>Bad Request</TITLE>
<META HTTP-EQUIV="Content-Type" Content="text/html; charset=us-ascii"></HEAD>
<BODY><h2>Bad Request - Invalid URL</h2>
<hr><p>HTTP Error 400. The request URL is invalid.</p>
</BODY></HTML>
"#;
