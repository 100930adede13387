//! `cargo bench -p callsync-tests --bench templates`: what templates cost at their worst.
//!
//! - Checking `result_codes` when a document is saved, by size: the time per entry should
//!   stay flat (linear in the size), not grow with it.
//! - The most costly templates the document check lets through, each rendered in a process
//!   of its own on a call whose values are as long as a render takes (4 KiB), printing how
//!   the render ended, its time and the process's peak resident memory before and after —
//!   which must stay far under the functions' 256 MB.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use callsync::destinations::template::{
    BodyFormat, HttpTemplate, HttpTemplateSettings, MAX_CONCATENATIONS, MAX_VALUE_BYTES, Method,
    sample_context,
};
use callsync_tests::bench::peak_rss_mib;

fn settings(format: BodyFormat, body: String) -> HttpTemplateSettings {
    HttpTemplateSettings {
        method: Method::Post,
        url: "https://esb.example.org/calls".to_owned(),
        headers: BTreeMap::new(),
        body,
        format,
        result_codes: BTreeMap::new(),
        failure_pattern: None,
        secret_name: None,
        timeout_secs: None,
    }
}

/// The worst cases, by name: (format, body).
fn case(name: &str) -> (BodyFormat, String) {
    let joined = vec!["contact.first_name"; MAX_CONCATENATIONS + 1].join(" ~ ");
    match name {
        "concatenation" => (BodyFormat::Text, format!("{{{{ {joined} }}}}")),
        "escaped-concatenation" => (
            BodyFormat::Xml,
            format!("<a>{{{{ ({joined}) | e }}}}</a>"),
        ),
        "nested-loops-printing" => (
            BodyFormat::Text,
            format!(
                "{{% for a in contact.first_name %}}{{% for b in contact.first_name %}}{}{{% endfor %}}{{% endfor %}}",
                "x".repeat(60_000)
            ),
        ),
        "nested-loops-idle" => (
            BodyFormat::Text,
            "{% for a in contact.first_name %}{% for b in contact.first_name %}{% for c in contact.first_name %}{% endfor %}{% endfor %}{% endfor %}".to_owned(),
        ),
        other => panic!("no case {other}"),
    }
}

const CASES: [&str; 4] = [
    "concatenation",
    "escaped-concatenation",
    "nested-loops-printing",
    "nested-loops-idle",
];

fn run_case(name: &str) {
    let (format, body) = case(name);
    let template = HttpTemplate::compile(&settings(format, body), "bench").expect("compiles");
    let mut ctx = sample_context();
    ctx["contact"]["first_name"] = "<".repeat(MAX_VALUE_BYTES).into();
    let before = peak_rss_mib();
    let started = Instant::now();
    let outcome = match template.render(&ctx) {
        Ok(r) => format!("rendered {} bytes", r.body.len()),
        Err(e) => format!("refused: {e}"),
    };
    println!(
        "{name:>22}: {outcome} in {:.1} ms; peak RSS {before:.1} → {:.1} MiB",
        started.elapsed().as_secs_f64() * 1e3,
        peak_rss_mib()
    );
}

fn result_codes(n: usize) -> f64 {
    let mut s = settings(BodyFormat::Text, "{{ code }}".to_owned());
    s.result_codes = (0..n)
        .map(|i| (format!("Agent Cust {i}"), format!("C{i}")))
        .collect();
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let started = Instant::now();
        HttpTemplate::compile(&s, "bench").expect("compiles");
        best = best.min(started.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--case") {
        run_case(&args[i + 1]);
        return;
    }
    // `cargo test --benches` runs benches as tests with `--bench` absent: stay quick then.
    if !args.iter().any(|a| a == "--bench") {
        println!("templates: run with `cargo bench -p callsync-tests --bench templates`");
        return;
    }
    println!("result_codes checked when saved (best of 5):");
    for n in [250, 500, 1_000, 2_000] {
        let secs = result_codes(n);
        println!(
            "  {n:>5} codes: {:.1} ms, {:.2} µs per code",
            secs * 1e3,
            secs * 1e6 / n as f64
        );
    }
    println!("worst-case renders (values of {MAX_VALUE_BYTES} bytes), one process each:");
    let me = std::env::current_exe().expect("this bench's path");
    for name in CASES {
        let out = Command::new(&me)
            .args(["--case", name])
            .output()
            .expect("run a case");
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            println!("  {name}: failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
