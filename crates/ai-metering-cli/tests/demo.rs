//! End to end: `ai-metering demo` on a free port, the OpenAI-compatible endpoint called
//! plainly and streaming until the quota runs out, then the recorded usage read back with
//! `ai-metering report`. The HTTP client is a few lines over a TcpStream (HTTP/1.1,
//! `Connection: close`), enough for JSON and server-sent events.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Workspace;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// The demo server, killed when dropped.
struct Demo {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dashboard's sign-in token the tests give the demo.
const ADMIN_TOKEN: &str = "admin-token-of-the-demo-tests";

fn start_demo(ws: &Workspace) -> Demo {
    start_demo_with(ws, &["demo", "--addr", "127.0.0.1:0", "--db", "demo.db"])
}

fn start_demo_with(ws: &Workspace, args: &[&str]) -> Demo {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ai-metering"))
        .args(args)
        .current_dir(ws.dir.path())
        .env_clear()
        // Only warnings from the server's log (it shares the test's stderr).
        .env("AI_METERING_LOG_LEVEL", "warn")
        .env("AI_METERING_ADMIN_TOKEN", ADMIN_TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the demo exited before listening")
            .expect("read stdout");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest.trim().parse::<SocketAddr>().expect("address");
        }
    };
    // Keep draining the banner so the demo never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Demo { child, addr }
}

struct Response {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Response {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let auth = key.map(|k| format!("Authorization: Bearer {k}"));
    let body = body.map(Value::to_string).unwrap_or_default();
    send(
        addr,
        method,
        path,
        auth.as_deref(),
        "application/json",
        &body,
    )
}

/// Signs in to the dashboard with the tests' admin token; the `Cookie` header of the session.
fn sign_in(addr: SocketAddr) -> String {
    let r = send(
        addr,
        "POST",
        "/ai-metering/login",
        None,
        "application/x-www-form-urlencoded",
        &format!("token={ADMIN_TOKEN}"),
    );
    assert!(matches!(r.status, 200 | 303), "{}: {}", r.status, r.body);
    let cookie = r.header("set-cookie").expect("a session cookie");
    format!("Cookie: {}", cookie.split(';').next().unwrap())
}

/// `GET path` of the dashboard, in the session of `cookie` (from [`sign_in`]).
fn dashboard(addr: SocketAddr, cookie: &str, path: &str) -> Response {
    send(addr, "GET", path, Some(cookie), "application/json", "")
}

/// One request: `header` is one extra header line, `body` is sent with `content_type`.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    header: Option<&str>,
    content_type: &str,
    body: &str,
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(header) = header {
        request.push_str(&format!("{header}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("receive");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body: String::from_utf8(body).expect("UTF-8 body"),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

/// The `data:` payloads of an event stream.
fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

fn chat(stream: bool) -> Value {
    let mut body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are a test."},
            {"role": "user", "content": "Please repeat this sentence about metering tokens, quotas and limits. ".repeat(6)}
        ]
    });
    if stream {
        body["stream"] = json!(true);
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

#[test]
fn the_demo_serves_metered_chat_until_the_quota_runs_out() {
    let ws = Workspace::new();
    let demo = start_demo(&ws);
    let addr = demo.addr;

    let models = http(addr, "GET", "/v1/models", Some("sk-demo-alice"), None);
    assert_eq!(models.status, 200);
    let listed: Vec<Value> = models.json()["data"].as_array().unwrap().clone();
    assert!(
        listed.iter().any(|m| m["id"] == "gpt-4o-mini"),
        "{}",
        models.body
    );
    // The dashboard is served behind its login only.
    let closed = http(addr, "GET", "/ai-metering", None, None);
    assert_ne!(closed.status, 200, "{}", closed.body);
    let cookie = sign_in(addr);
    let open = dashboard(addr, &cookie, "/ai-metering");
    assert_eq!(open.status, 200, "{}", open.body);

    // No key, a wrong key: 401 in OpenAI's shape.
    for key in [None, Some("sk-wrong")] {
        let r = http(
            addr,
            "POST",
            "/v1/chat/completions",
            key,
            Some(&chat(false)),
        );
        assert_eq!(r.status, 401, "{}", r.body);
        assert_eq!(r.json()["error"]["code"], "invalid_api_key");
    }
    // An unknown model: 404 model_not_found.
    let mut unknown = chat(false);
    unknown["model"] = json!("gpt-99");
    let r = http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some("sk-demo-globex"),
        Some(&unknown),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "model_not_found");

    // bob is over his limit already.
    let r = http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some("sk-demo-bob"),
        Some(&chat(false)),
    );
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["error"]["type"], "insufficient_quota");
    assert_eq!(r.json()["error"]["code"], "insufficient_quota");
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);

    // alice has 5,000 tokens left: alternate plain and streaming calls until 429.
    let mut spent = 0_u64;
    let mut ok_calls = 0;
    let mut last_remaining: Option<u64> = None;
    let mut refused = None;
    for i in 0..200 {
        let streaming = i % 2 == 1;
        let r = http(
            addr,
            "POST",
            "/v1/chat/completions",
            Some("sk-demo-alice"),
            Some(&chat(streaming)),
        );
        if r.status == 429 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{}", r.body);
        let remaining: u64 = r
            .header("x-remaining-tokens")
            .expect("X-Remaining-Tokens")
            .parse()
            .expect("a number");
        // A streamed reply's headers are sent before it is generated, so they count its
        // reservation (the estimate) rather than its usage: compare plain calls only.
        if !streaming {
            if let Some(last) = last_remaining {
                assert!(
                    remaining < last,
                    "remaining tokens must go down: {last} then {remaining}"
                );
            }
            last_remaining = Some(remaining);
        }
        assert!(r.header("x-usage-percentage").is_some());
        assert!(
            r.header("ratelimit")
                .is_some_and(|v| v.contains(&format!("r={remaining}"))),
            "{:?}",
            r.headers
        );
        let usage = if streaming {
            assert!(
                r.header("content-type")
                    .unwrap_or("")
                    .starts_with("text/event-stream")
            );
            let data = sse_data(&r.body);
            assert_eq!(
                data.last().map(String::as_str),
                Some("[DONE]"),
                "{}",
                r.body
            );
            let chunks: Vec<Value> = data[..data.len() - 1]
                .iter()
                .map(|d| serde_json::from_str(d).expect("chunk JSON"))
                .collect();
            let text: String = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
                .collect();
            assert!(text.starts_with("ok"), "{text}");
            let last = chunks.last().expect("usage chunk");
            assert_eq!(last["choices"], json!([]));
            assert_eq!(
                chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
                "stop"
            );
            last["usage"].clone()
        } else {
            let j = r.json();
            assert_eq!(j["object"], "chat.completion");
            assert!(
                j["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .starts_with("ok")
            );
            j["usage"].clone()
        };
        let total = usage["total_tokens"].as_u64().expect("total_tokens");
        assert_eq!(
            total,
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        );
        spent += total;
        ok_calls += 1;
    }
    let refused = refused.expect("alice should run out of quota");
    assert!(ok_calls >= 2, "only {ok_calls} calls before 429");
    assert!(spent <= 5_000, "spent {spent} of 5,000 tokens");
    let err = refused.json();
    assert_eq!(
        err["error"]["type"], "insufficient_quota",
        "{}",
        refused.body
    );
    assert!(
        refused.header("retry-after").is_some(),
        "{:?}",
        refused.headers
    );
    assert_eq!(refused.header("x-should-retry"), Some("false"));

    // globex is fine: a streaming call without include_usage has no usage chunk.
    let mut body = chat(true);
    body["stream_options"] = json!({"include_usage": false});
    let r = http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some("sk-demo-globex"),
        Some(&body),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(sse_data(&r.body).iter().all(|d| !d.contains("\"usage\"")));

    // acme pays from its wallet ($2 left after the seeded history).
    let r = http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some("sk-demo-acme"),
        Some(&chat(false)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // ...and its responses say what is left in the wallet, exactly.
    assert_eq!(
        r.header("x-credits-currency"),
        Some("USD"),
        "{:?}",
        r.headers
    );
    let balance: Decimal = r.header("x-credits-balance").unwrap().parse().unwrap();
    let available: Decimal = r.header("x-credits-available").unwrap().parse().unwrap();
    assert!(
        balance < Decimal::from(2) && balance > Decimal::new(199, 2),
        "{balance}"
    );
    assert_eq!(
        available, balance,
        "nothing is held once the call is recorded"
    );
    // Plan-mode accounts get no wallet headers.
    let r = http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some("sk-demo-globex"),
        Some(&chat(false)),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-credits-balance"), None);

    drop(demo);

    // The recorded usage: the seeded 45,000 tokens plus exactly what the API reported.
    let url = format!("sqlite://{}?mode=rwc", ws.path("demo.db").display());
    let report = ws.run(&[
        "--database-url",
        &url,
        "report",
        "--billable",
        "user:alice",
        "--format",
        "json",
    ]);
    assert_eq!(report.code, 0, "{}", report.stderr);
    let j = report.json();
    assert_eq!(
        j["totals"]["total_tokens"].as_u64(),
        Some(45_000 + spent),
        "{j}"
    );

    // acme's call was paid from its wallet: a little under the $2 it had.
    let wallet = ws.run(&[
        "--database-url",
        &url,
        "wallet",
        "balance",
        "team:acme",
        "--format",
        "json",
    ]);
    assert_eq!(wallet.code, 0, "{}", wallet.stderr);
    let w = wallet.json();
    let balance: Decimal = w["balance"].as_str().unwrap().parse().unwrap();
    assert!(balance < Decimal::from(2), "{w}");
    assert!(balance > Decimal::new(199, 2), "{w}");
    assert_eq!(w["transactions"][0]["reason"], "usage");
    assert_eq!(w["held"], "0");
}

/// Sends `head` (request line and headers, without the blank line) and `body` as they are.
fn raw(addr: SocketAddr, head: &str, body: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    // The server may answer (and stop reading) before the whole body is sent.
    let _ =
        stream.write_all(format!("{head}\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes());
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Checks an OpenAI error body: `{"error": {"message", "type", "param", "code"}}`.
fn assert_openai_error(r: &Response, status: u16) -> Value {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{}",
        r.body
    );
    let error = r.json()["error"].clone();
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{error}"
    );
    assert!(error["type"].is_string(), "{error}");
    assert!(error.as_object().unwrap().contains_key("param"), "{error}");
    assert!(error.as_object().unwrap().contains_key("code"), "{error}");
    error
}

#[test]
fn every_api_error_is_openai_json_and_short() {
    let ws = Workspace::new();
    let demo = start_demo(&ws);
    let addr = demo.addr;

    // /v1/models needs a key like every other route.
    let r = http(addr, "GET", "/v1/models", None, None);
    assert_eq!(assert_openai_error(&r, 401)["code"], "invalid_api_key");
    let r = http(addr, "GET", "/v1/models", Some("sk-demo-alice"), None);
    assert_eq!(r.status, 200, "{}", r.body);

    assert_openai_error(&http(addr, "GET", "/v1/nothing-here", None, None), 404);
    assert_openai_error(
        &http(
            addr,
            "GET",
            "/v1/chat/completions",
            Some("sk-demo-alice"),
            None,
        ),
        405,
    );
    assert_openai_error(
        &http(addr, "DELETE", "/v1/models", Some("sk-demo-alice"), None),
        405,
    );

    // A body above the limit: 413 in the same shape (only a little more than the limit is
    // sent; the declared length is what a 50 MB upload would say).
    let body = vec![b' '; 2 * 1024 * 1024 + 1];
    let r = raw(
        addr,
        "POST /v1/chat/completions HTTP/1.1\r\nAuthorization: Bearer sk-demo-alice\r\nContent-Type: application/json\r\nContent-Length: 52428800",
        &body,
    );
    assert_openai_error(&r, 413);

    // A 10,000-character model name is not echoed back whole.
    let long = "m".repeat(10_000);
    let request = json!({"model": long, "messages": [{"role": "user", "content": "Hi"}]});
    let r = http(
        addr,
        "POST",
        "/v1/chat/completions",
        Some("sk-demo-alice"),
        Some(&request),
    );
    let error = assert_openai_error(&r, 404);
    assert!(error["message"].as_str().unwrap().len() < 300, "{error}");
}

#[test]
fn the_demo_refuses_files_it_did_not_create_and_binds_before_touching_any() {
    let ws = Workspace::new();
    // Someone's notes, passed to --db by mistake: refused and kept.
    std::fs::write(ws.path("notes.txt"), "do not delete me").unwrap();
    let r = ws.run(&["demo", "--addr", "127.0.0.1:0", "--db", "notes.txt"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("not a demo database"), "{}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(ws.path("notes.txt")).unwrap(),
        "do not delete me"
    );
    // An application's migrated database (no demo marker) is refused too.
    ws.ok(&["migrate"]);
    let url = ws.url.clone();
    let r = ws.run(&["demo", "--addr", "127.0.0.1:0", "--database-url", &url]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("not a demo database"), "{}", r.stderr);
    assert!(ws.db.exists());

    // A second demo on the running one's port fails before it touches its database.
    let demo = start_demo(&ws);
    let before = std::fs::metadata(ws.path("demo.db"))
        .unwrap()
        .modified()
        .unwrap();
    let port = demo.addr.to_string();
    let r = ws.run(&["demo", "--addr", &port, "--db", "demo.db"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("cannot listen"), "{}", r.stderr);
    let after = std::fs::metadata(ws.path("demo.db"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    let models = http(demo.addr, "GET", "/v1/models", Some("sk-demo-alice"), None);
    assert_eq!(models.status, 200);
    drop(demo);

    // The demo's own database is recreated on the next run.
    let demo = start_demo(&ws);
    drop(demo);
}

#[test]
fn after_the_demo_the_other_commands_find_its_database() {
    let ws = Workspace::new();
    // Nothing configured: the demo uses the database every command uses.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ai-metering"))
        .args(["demo", "--addr", "127.0.0.1:0"])
        .current_dir(ws.dir.path())
        .env_clear()
        .env("AI_METERING_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    while let Some(Ok(line)) = lines.next() {
        if line.contains("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let report = Command::new(env!("CARGO_BIN_EXE_ai-metering"))
        .args(["report", "--billable", "user:alice", "--format", "json"])
        .current_dir(ws.dir.path())
        .env_clear()
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        report.status.success(),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let j: Value = serde_json::from_slice(&report.stdout).unwrap();
    assert!(j["totals"]["total_tokens"].as_u64().unwrap() > 0, "{j}");

    // --database-url is honoured by the demo.
    let url = format!("sqlite://{}?mode=rwc", ws.path("chosen.db").display());
    let demo = start_demo_with(
        &ws,
        &["--database-url", &url, "demo", "--addr", "127.0.0.1:0"],
    );
    drop(demo);
    assert!(ws.path("chosen.db").exists());
}

/// A client that reads the first words of a streamed reply and hangs up is charged for
/// what it received: a usage row flagged estimated, its output the words sent (less than
/// the whole reply), paid from acme's wallet.
#[test]
fn a_client_that_disconnects_mid_stream_pays_for_what_it_received() {
    let ws = Workspace::new();
    let demo = start_demo(&ws);
    let key = "sk-demo-acme";
    let cookie = sign_in(demo.addr);
    let wallet = |demo: &Demo| {
        let r = dashboard(demo.addr, &cookie, "/ai-metering/api/billables/team/acme");
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let before = wallet(&demo);

    // A long reply: the mock streams 4,000 words, one every few milliseconds.
    let mut body = json!({
        "model": "gpt-4o-mini",
        "max_tokens": 4_000,
        "stream": true,
        "messages": [{"role": "user", "content": "metering ".repeat(600)}]
    });
    body["stream_options"] = json!({"include_usage": true});
    let body = body.to_string();
    let mut stream = TcpStream::connect(demo.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        demo.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut reader = BufReader::new(stream);
    let mut words = 0;
    let mut line = String::new();
    while words < 5 {
        line.clear();
        reader.read_line(&mut line).expect("read the stream");
        assert!(!line.is_empty(), "the stream ended early");
        if line.starts_with("data: {")
            && line.contains("\"content\":\"")
            && !line.contains("\"content\":\"\"")
        {
            words += 1;
        }
    }
    drop(reader); // hang up mid-stream

    // The demo notices at its next write and records in the background; ask until it has.
    let mut rows = Vec::new();
    for _ in 0..500 {
        let r = dashboard(
            demo.addr,
            &cookie,
            "/ai-metering/api/usage?billable=team:acme",
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let page = r.json();
        rows = page["rows"]
            .as_array()
            .cloned()
            .expect("a page of rows")
            .into_iter()
            .filter(|row| row["estimated"] == json!(true))
            .collect();
        if !rows.is_empty() {
            break;
        }
    }
    assert_eq!(rows.len(), 1, "the abandoned stream is recorded once");
    let row = &rows[0];
    let output = row["usage"]["output"].as_u64().expect("output tokens");
    // At least the 5 words read (a token each at the least), far less than the ~600-word
    // reply; the prompt is the request's estimate: 5,400 bytes, one message, one request.
    assert!(output >= 5, "{row}");
    assert!(output < 600, "{row}");
    assert_eq!(row["usage"]["input"], json!(1_800 + 4 + 3), "{row}");
    let after = wallet(&demo);
    assert_ne!(before, after, "the wallet paid for it");
}

#[test]
fn the_demo_with_its_published_keys_serves_loopback_only() {
    let ws = Workspace::new();
    let db = ws.dir.path().join("demo.db");
    std::fs::write(&db, b"kept").unwrap();
    for addr in ["0.0.0.0:0", "[::]:0", "192.0.2.1:8080"] {
        let r = ws.fails(&["demo", "--addr", addr, "--db", "demo.db"], 2, "loopback");
        assert!(
            r.stderr.contains(addr.trim_end_matches(":0")),
            "{}",
            r.stderr
        );
    }
    // Refused before anything was touched.
    assert_eq!(std::fs::read(&db).unwrap(), b"kept");
}

#[test]
fn a_store_failure_shows_the_client_a_request_id_not_the_error() {
    let ws = Workspace::new();
    let demo = start_demo(&ws);
    // Break the demo's database under it: its tables disappear.
    let url = format!("sqlite://{}", ws.dir.path().join("demo.db").display());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sea_orm::{ConnectionTrait, Database};
        let db = Database::connect(url.as_str()).await.unwrap();
        for table in [
            "ai_subscriptions",
            "ai_plans",
            "ai_period_counters",
            "ai_reservations",
            "ai_usages",
        ] {
            db.execute_unprepared(&format!("DROP TABLE {table}"))
                .await
                .unwrap();
        }
        db.close().await.unwrap();
    });

    let r = http(
        demo.addr,
        "POST",
        "/v1/chat/completions",
        Some("sk-demo-globex"),
        Some(&chat(false)),
    );
    assert!(matches!(r.status, 500 | 503), "{}: {}", r.status, r.body);
    let error = &r.json()["error"];
    assert_eq!(error["type"], "server_error");
    let id = r.header("x-request-id").expect("x-request-id").to_owned();
    assert!(id.starts_with("req_"), "{id}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(&id), "{message}");
    for leak in ["no such table", "ai_", "SQL", "sqlite", "database"] {
        assert!(
            !r.body.to_lowercase().contains(&leak.to_lowercase()),
            "{leak:?} in {}",
            r.body
        );
    }
}
