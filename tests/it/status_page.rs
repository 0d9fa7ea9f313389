//! The status page on the metrics listener, as a browser renders it: `binlake run` with the
//! purchases pipeline, its gold models and `[metrics]`, then headless Chromium (Debian's, which
//! scripts/test.sh installs) dumps the page's DOM and takes a screenshot, both checked for
//! content. With BINLAKE_UPDATE_DOCS=1 the screenshot is saved as docs/status-page.png.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::mariadb::MariaDb;
use crate::support::scenario::Scenario;
use crate::KillOnDrop;

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium(profile: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{CHROMIUM}: {e} (scripts/test.sh installs Debian's chromium)"))
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut body = String::new();
    conn.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn the_status_page_shows_tables_lag_throughput_dead_letters_and_gold_rows() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let db = MariaDb::start();
    db.sql_file(&repo.join("sql/purchases.sql"));
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Scenario::source(&db, 4901)
        .snapshot("initial")
        .include("purchases.*")
        .transport("kind = \"embedded\"")
        .lake("url = \"lake\"\nmax_latency_ms = 300")
        .section(&format!(
            "[gold]\nmodels = \"{}\"\nrefresh = \"on_commit\"",
            repo.join("sql/gold/purchases").display()
        ))
        .section(&format!("[metrics]\nlisten = \"127.0.0.1:{port}\""))
        .write(dir.path(), "status.toml");
    let mut run = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
            .args(["run", "--config"])
            .arg(&config)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    crate::run_ok(
        std::process::Command::new(env!("CARGO_BIN_EXE_binlake"))
            .args([
                "generate",
                "--scenario",
                "purchases",
                "--rate",
                "200",
                "--duration",
                "5",
                "--config",
            ])
            .arg(&config),
    );
    // Until the page has the table and gold rows (bounded).
    let started = Instant::now();
    loop {
        let page = http_get(port, "/").unwrap_or_default();
        if page.contains("purchases.purchase_events")
            && page.contains("gold/daily_totals</h3><table>")
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the page never filled: {page}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let url = format!("http://127.0.0.1:{port}/");
    let profile = dir.path().join("chromium");

    // What the browser renders: the DOM after parsing.
    let dom = chromium(&profile, &["--dump-dom", &url]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    for expected in [
        "<h1>binlake</h1>",
        "<td>purchases.purchase_events</td>",
        "throughput of purchases.purchase_events",
        "<h2>Dead letters</h2>",
        "<h3>gold/daily_totals</h3>",
        "<th>running_total</th>",
        "<h3>gold/category_breakdown</h3>",
        "<h3>gold/invalid_purchases</h3>",
    ] {
        assert!(dom.contains(expected), "{expected} not in {dom}");
    }
    let applied: u64 = dom
        .split("<td>purchases.purchase_events</td>")
        .nth(1)
        .and_then(|rest| rest.split("<td class=\"num\">").nth(2))
        .and_then(|cell| cell.split('<').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(applied > 0, "changes applied shown for the table: {dom}");

    // The screenshot: a 1200x1400 image with text and the chart's blue line in it.
    let shot = dir.path().join("status.png");
    let out = chromium(
        &profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,1400",
            &url,
        ],
    );
    assert!(shot.exists(), "{}", String::from_utf8_lossy(&out.stderr));
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 1400));
    let channels = info.line_size / info.width as usize;
    let pixels = buf[..info.buffer_size()].chunks(channels);
    let (mut dark, mut blue) = (0usize, 0usize);
    for p in pixels {
        let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
        if r < 90 && g < 90 && b < 90 {
            dark += 1;
        }
        // The chart's line, #2a6fdb.
        if (r - 42).abs() < 40 && (g - 111).abs() < 40 && (b - 219).abs() < 40 {
            blue += 1;
        }
    }
    assert!(dark > 2_000, "text on the page: {dark} dark pixels");
    assert!(
        blue > 50,
        "a throughput chart on the page: {blue} blue pixels"
    );
    if std::env::var("BINLAKE_UPDATE_DOCS").is_ok() {
        std::fs::create_dir_all(repo.join("docs")).unwrap();
        std::fs::copy(&shot, repo.join("docs/status-page.png")).unwrap();
    }
    let pid = run.id().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status();
    let status = run.wait().unwrap();
    assert!(status.success(), "binlake run after SIGTERM: {status}");
}
