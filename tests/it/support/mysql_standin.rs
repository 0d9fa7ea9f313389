//! A MySQL stand-in for the tests: no MySQL server can be installed on this machine, so this
//! speaks MySQL's client/server protocol over 127.0.0.1 the way MySQL 8.0, 8.4 or 9.x does for
//! the statements binlake sends, and serves real MySQL binlog files (tests/fixtures) over
//! replication.
//!
//! Written from MySQL's documentation and source: the connection phase and packets
//! (dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html, `sql/auth/
//! sql_authentication.cc`), `caching_sha2_password` as `sql/auth/sha2_password.cc` does it: the
//! full path for a user not yet in the server's cache (0x01 0x04; the client asks for the RSA
//! public key with 0x02 and sends the password XOR the nonce encrypted with RSA-OAEP), then the
//! fast path (the client sends SHA256(pw) XOR SHA256(SHA256(SHA256(pw)), nonce); 0x01 0x03 and
//! OK), over TLS (an SSL request, then the handshake; the full path then sends the password in
//! clear) or plain TCP, `mysql_native_password` through an auth switch,
//! text result sets without CLIENT_DEPRECATE_EOF, COM_REGISTER_SLAVE and COM_BINLOG_DUMP as
//! `sql/rpl_binlog_sender.cc` answers them (an artificial ROTATE naming the file, the
//! FORMAT_DESCRIPTION, the events from the requested offset, then HEARTBEAT events at the
//! period the replica set in `@source_heartbeat_period` / `@master_heartbeat_period`), error
//! 1236 with MySQL's text for a binlog the server no longer has, and, on 8.4, error 1064 for the
//! statements 8.4 removed (`SHOW MASTER STATUS`, `SHOW SLAVE HOSTS`).
//!
//! What it proves: binlake sends each release's statements and session variables, reads MySQL's
//! answers, authenticates, and turns events a real MySQL wrote, delivered the way the binlog
//! sender delivers them, into the same change events as `binlake replay`, and resumes by GTID
//! (COM_BINLOG_DUMP_GTID, untagged sets) without losing or repeating a transaction. What only a
//! real MySQL can show: the server's own behaviour under load and concurrent commits, MySQL's own
//! TLS library and ciphers (the stand-in's TLS is rustls), privileges, and anything the
//! statements below do not cover (docker-compose.yml runs MySQL 8.4 for that).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sha1::Digest as _;

/// What the stand-in is.
#[derive(Clone)]
pub struct StandInSpec {
    /// `SELECT VERSION()`: e.g. `8.4.3`, `8.0.36`, `9.1.0`.
    pub version: String,
    /// Binlog files served, oldest first, under their own file names.
    pub binlogs: Vec<PathBuf>,
    pub server_id: u32,
    /// User, password, and its plugin (`caching_sha2_password` or `mysql_native_password`).
    pub users: Vec<(String, String, String)>,
    /// Serve only this many bytes of the newest file: what the server has written so far.
    pub written: Option<u64>,
    /// TLS: the server's certificate chain and key (PEM); None offers no TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A pause before each transaction sent: commits arriving over time, as on a live server.
    pub pace: Option<Duration>,
    /// Global variables beyond (or instead of) a self-run server's: a managed service's own
    /// (`aurora_version`, `aad_auth_only`, `basedir` = `/rdsdbbin/mysql/`, ...).
    pub variables: Vec<(String, String)>,
    /// RDS and Aurora: the rows `CALL mysql.rds_show_configuration` answers (name, value);
    /// `None`: the procedure does not exist, as on any other server.
    pub rds_configuration: Option<Vec<(String, Option<String>)>>,
}

impl StandInSpec {
    pub fn mysql(version: &str, binlogs: &[PathBuf]) -> StandInSpec {
        StandInSpec {
            version: version.to_string(),
            binlogs: binlogs.to_vec(),
            server_id: 1,
            users: vec![(
                "binlake".into(),
                "s3cret".into(),
                "caching_sha2_password".into(),
            )],
            written: None,
            tls: None,
            pace: None,
            variables: Vec::new(),
            rds_configuration: None,
        }
    }

    fn release(&self) -> (u32, u32, u32) {
        let mut p = self
            .version
            .split(|c: char| !c.is_ascii_digit())
            .map(|x| x.parse().unwrap_or(0));
        (
            p.next().unwrap_or(0),
            p.next().unwrap_or(0),
            p.next().unwrap_or(0),
        )
    }
}

/// A running stand-in on a free loopback port; stopped when dropped.
pub struct MySqlStandIn {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Every statement it was sent, in order.
    pub statements: Arc<std::sync::Mutex<Vec<String>>>,
    /// Its `caching_sha2_password` state: which paths ran.
    pub auth: Arc<Auth>,
}

impl MySqlStandIn {
    pub fn start(spec: StandInSpec) -> MySqlStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let statements = Arc::new(std::sync::Mutex::new(Vec::new()));
        let auth = Arc::new(Auth::new());
        let (s, st, au) = (stop.clone(), statements.clone(), auth.clone());
        let thread = std::thread::spawn(move || {
            let mut id = 0u32;
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        id += 1;
                        let (spec, s, st, au) = (spec.clone(), s.clone(), st.clone(), au.clone());
                        std::thread::spawn(move || {
                            let _ = Session::new(stream, spec, id, s, st, au).run();
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        MySqlStandIn {
            port,
            stop,
            thread: Some(thread),
            statements,
            auth,
        }
    }
}

impl Drop for MySqlStandIn {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const CLIENT_LONG_PASSWORD: u32 = 1;
const CLIENT_CONNECT_WITH_DB: u32 = 8;
const CLIENT_PROTOCOL_41: u32 = 512;
const CLIENT_SSL: u32 = 2048;
const CLIENT_TRANSACTIONS: u32 = 8192;
const CLIENT_SECURE_CONNECTION: u32 = 32768;
const CLIENT_MULTI_RESULTS: u32 = 1 << 17;
const CLIENT_PLUGIN_AUTH: u32 = 1 << 19;
const CLIENT_PLUGIN_AUTH_LENENC: u32 = 1 << 21;

const ROTATE_EVENT: u8 = 4;
const FORMAT_DESCRIPTION_EVENT: u8 = 15;
const HEARTBEAT_EVENT: u8 = 27;
const LOG_EVENT_ARTIFICIAL_F: u16 = 0x20;

/// `caching_sha2_password`'s server side: the RSA key pair of the full path, the users whose
/// password hash is cached (the fast path works for them), and how often each path ran.
pub struct Auth {
    dir: tempfile::TempDir,
    cached: std::sync::Mutex<std::collections::HashSet<String>>,
    pub fast: std::sync::atomic::AtomicU64,
    pub full: std::sync::atomic::AtomicU64,
}

impl Auth {
    fn new() -> Auth {
        let dir = tempfile::tempdir().unwrap();
        for args in [
            &["genrsa", "-out", "private.pem", "2048"][..],
            &["rsa", "-in", "private.pem", "-pubout", "-out", "public.pem"][..],
        ] {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .unwrap();
            assert!(out.status.success(), "openssl {args:?}: {out:?}");
        }
        Auth {
            dir,
            cached: Default::default(),
            fast: Default::default(),
            full: Default::default(),
        }
    }

    /// RSA-OAEP (SHA-1) decryption with the private key, as the server does
    /// (`sql/auth/sha2_password.cc`); openssl does the arithmetic.
    fn decrypt(&self, ciphertext: &[u8]) -> Option<Vec<u8>> {
        let input = self.dir.path().join(format!("in-{}", std::process::id()));
        std::fs::write(&input, ciphertext).ok()?;
        let out = std::process::Command::new("openssl")
            .args([
                "pkeyutl",
                "-decrypt",
                "-inkey",
                "private.pem",
                "-pkeyopt",
                "rsa_padding_mode:oaep",
                "-in",
            ])
            .arg(&input)
            .current_dir(self.dir.path())
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    }
}

/// The connection, before and after a client's SSL request.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
    Closed,
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Closed => Ok(0),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Closed => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Closed => Ok(()),
        }
    }
}

/// The rustls server side of `spec.tls`.
fn tls_config(cert: &PathBuf, key: &PathBuf) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    )
}

struct Session {
    stream: Stream,
    auth: Arc<Auth>,
    spec: StandInSpec,
    id: u32,
    seq: u8,
    nonce: [u8; 20],
    user_vars: HashMap<String, String>,
    stop: Arc<AtomicBool>,
    statements: Arc<std::sync::Mutex<Vec<String>>>,
}

fn lenenc_int(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=250 => out.push(v as u8),
        251..=0xffff => {
            out.push(0xfc);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x10000..=0xff_ffff => {
            out.push(0xfd);
            out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xfe);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    lenenc_int(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn read_lenenc(buf: &[u8], at: &mut usize) -> u64 {
    let first = buf[*at];
    *at += 1;
    match first {
        0xfc => {
            let v = u16::from_le_bytes([buf[*at], buf[*at + 1]]) as u64;
            *at += 2;
            v
        }
        0xfd => {
            let v = u32::from_le_bytes([buf[*at], buf[*at + 1], buf[*at + 2], 0]) as u64;
            *at += 3;
            v
        }
        0xfe => {
            let v = u64::from_le_bytes(buf[*at..*at + 8].try_into().unwrap());
            *at += 8;
            v
        }
        n => n as u64,
    }
}

fn sha1(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = sha1::Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

fn sha256(parts: &[&[u8]]) -> Vec<u8> {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().to_vec()
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

/// A result set's column: name and MySQL type (253 VAR_STRING, 8 LONGLONG).
struct Col(&'static str, u8);

impl Session {
    fn new(
        stream: TcpStream,
        spec: StandInSpec,
        id: u32,
        stop: Arc<AtomicBool>,
        statements: Arc<std::sync::Mutex<Vec<String>>>,
        auth: Arc<Auth>,
    ) -> Session {
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut nonce = [0u8; 20];
        for (i, b) in nonce.iter_mut().enumerate() {
            // Printable, non-zero bytes, as the server's scramble.
            *b = 33 + ((id as usize * 31 + i * 7) % 90) as u8;
        }
        Session {
            stream: Stream::Plain(stream),
            auth,
            spec,
            id,
            seq: 0,
            nonce,
            user_vars: HashMap::new(),
            stop,
            statements,
        }
    }

    fn write(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let mut packet = Vec::with_capacity(payload.len() + 4);
        packet.extend_from_slice(&(payload.len() as u32).to_le_bytes()[..3]);
        packet.push(self.seq);
        packet.extend_from_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        self.stream.write_all(&packet)
    }

    fn read(&mut self) -> std::io::Result<Vec<u8>> {
        let mut header = [0u8; 4];
        self.stream.read_exact(&mut header)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        self.seq = header[3].wrapping_add(1);
        let mut payload = vec![0u8; len];
        self.stream.read_exact(&mut payload)?;
        Ok(payload)
    }

    fn ok(&mut self) -> std::io::Result<()> {
        self.write(&[0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00])
    }

    fn err(&mut self, code: u16, state: &str, message: &str) -> std::io::Result<()> {
        let mut p = vec![0xff];
        p.extend_from_slice(&code.to_le_bytes());
        p.push(b'#');
        p.extend_from_slice(state.as_bytes());
        p.extend_from_slice(message.as_bytes());
        self.write(&p)
    }

    fn eof(&mut self) -> std::io::Result<()> {
        self.eof_with(0x0002)
    }

    /// An EOF packet with server status `status` (SERVER_STATUS_AUTOCOMMIT is 0x0002).
    fn eof_with(&mut self, status: u16) -> std::io::Result<()> {
        let mut p = vec![0xfe, 0x00, 0x00];
        p.extend_from_slice(&status.to_le_bytes());
        self.write(&p)
    }

    /// A stored procedure's answer: its result set, ending with SERVER_MORE_RESULTS_EXISTS,
    /// then the OK packet of the CALL itself (MySQL's `sp_head::execute_procedure`).
    fn procedure_result(
        &mut self,
        columns: &[Col],
        rows: &[Vec<Option<String>>],
    ) -> std::io::Result<()> {
        self.result_set_until(columns, rows, 0x0002 | 0x0008)?;
        self.ok()
    }

    fn result_set(&mut self, columns: &[Col], rows: &[Vec<Option<String>>]) -> std::io::Result<()> {
        self.result_set_until(columns, rows, 0x0002)
    }

    fn result_set_until(
        &mut self,
        columns: &[Col],
        rows: &[Vec<Option<String>>],
        final_status: u16,
    ) -> std::io::Result<()> {
        let mut count = Vec::new();
        lenenc_int(&mut count, columns.len() as u64);
        self.write(&count)?;
        for Col(name, kind) in columns {
            let mut c = Vec::new();
            for part in ["def", "", "", ""] {
                lenenc_str(&mut c, part.as_bytes());
            }
            lenenc_str(&mut c, name.as_bytes());
            lenenc_str(&mut c, name.as_bytes());
            c.push(0x0c);
            c.extend_from_slice(&(if *kind == 8 { 63u16 } else { 255u16 }).to_le_bytes());
            c.extend_from_slice(&1024u32.to_le_bytes());
            c.push(*kind);
            c.extend_from_slice(&0u16.to_le_bytes());
            c.push(0);
            c.extend_from_slice(&[0, 0]);
            self.write(&c)?;
        }
        self.eof()?;
        for row in rows {
            let mut r = Vec::new();
            for v in row {
                match v {
                    Some(v) => lenenc_str(&mut r, v.as_bytes()),
                    None => r.push(0xfb),
                }
            }
            self.write(&r)?;
        }
        self.eof_with(final_status)
    }

    fn run(mut self) -> std::io::Result<()> {
        self.handshake()?;
        loop {
            let packet = match self.read() {
                Ok(p) => p,
                Err(_) => return Ok(()),
            };
            let Some((&command, body)) = packet.split_first() else {
                return Ok(());
            };
            match command {
                0x01 => return Ok(()),
                0x0e => self.ok()?,
                0x03 => {
                    let sql = String::from_utf8_lossy(body).into_owned();
                    self.statements.lock().unwrap().push(sql.clone());
                    self.query(sql.trim())?;
                }
                0x15 => self.ok()?,
                0x12 => return self.binlog_dump(body),
                0x1e => return self.binlog_dump_gtid(body),
                _ => self.err(1047, "08S01", "Unknown command")?,
            }
        }
    }

    fn handshake(&mut self) -> std::io::Result<()> {
        let tls = if self.spec.tls.is_some() {
            CLIENT_SSL
        } else {
            0
        };
        let caps = tls
            | CLIENT_LONG_PASSWORD
            | CLIENT_CONNECT_WITH_DB
            | CLIENT_PROTOCOL_41
            | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION
            | CLIENT_MULTI_RESULTS
            | CLIENT_PLUGIN_AUTH
            | CLIENT_PLUGIN_AUTH_LENENC;
        let mut g = vec![10];
        g.extend_from_slice(self.spec.version.as_bytes());
        g.push(0);
        g.extend_from_slice(&self.id.to_le_bytes());
        g.extend_from_slice(&self.nonce[..8]);
        g.push(0);
        g.extend_from_slice(&(caps as u16).to_le_bytes());
        g.push(255);
        g.extend_from_slice(&2u16.to_le_bytes());
        g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
        g.push(21);
        g.extend_from_slice(&[0; 10]);
        g.extend_from_slice(&self.nonce[8..]);
        g.push(0);
        g.extend_from_slice(b"caching_sha2_password\0");
        self.seq = 0;
        self.write(&g)?;
        let mut response = self.read()?;
        let client_caps = u32::from_le_bytes(response[0..4].try_into().unwrap());
        if response.len() == 32 && client_caps & CLIENT_SSL != 0 {
            // An SSL request: the TLS handshake, then the real response inside it.
            let (cert, key) = self.spec.tls.clone().expect("TLS was offered");
            let conn = rustls::ServerConnection::new(tls_config(&cert, &key)).unwrap();
            let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Closed) else {
                unreachable!("TLS starts once")
            };
            self.stream = Stream::Tls(Box::new(rustls::StreamOwned::new(conn, tcp)));
            response = self.read()?;
        }
        // HandshakeResponse41: caps, max packet, charset, 23 zeros, user NUL, auth data.
        let mut at = 32;
        let end = at + response[at..].iter().position(|b| *b == 0).unwrap();
        let user = String::from_utf8_lossy(&response[at..end]).into_owned();
        at = end + 1;
        let len = read_lenenc(&response, &mut at) as usize;
        let auth = response[at..at + len].to_vec();
        let Some((_, password, plugin)) =
            self.spec.users.iter().find(|(u, _, _)| *u == user).cloned()
        else {
            return self.err(
                1045,
                "28000",
                &format!("Access denied for user '{user}'@'127.0.0.1' (using password: YES)"),
            );
        };
        let ok = if plugin == "mysql_native_password" {
            // Ask the client to switch: 0xFE, plugin, nonce.
            let mut switch = vec![0xfe];
            switch.extend_from_slice(b"mysql_native_password\0");
            switch.extend_from_slice(&self.nonce);
            switch.push(0);
            self.write(&switch)?;
            let answer = self.read()?;
            let stage1 = sha1(&[password.as_bytes()]);
            let expected = xor(&stage1, &sha1(&[&self.nonce, &sha1(&[&stage1])]));
            password.is_empty() && answer.is_empty() || answer == expected
        } else if password.is_empty() {
            auth.is_empty()
        } else if self.auth.cached.lock().unwrap().contains(&user) {
            // The fast path: the server holds SHA256(SHA256(pw)) from an earlier login.
            let stage1 = sha256(&[password.as_bytes()]);
            let expected = xor(&stage1, &sha256(&[&sha256(&[&stage1]), &self.nonce]));
            if auth == expected {
                self.write(&[0x01, 0x03])?;
                self.auth.fast.fetch_add(1, Ordering::Relaxed);
                true
            } else {
                false
            }
        } else {
            // The full path (`perform_full_authentication`): the password itself, over TLS in
            // clear, otherwise encrypted with the server's RSA key the client asks for.
            self.write(&[0x01, 0x04])?;
            let mut answer = self.read()?;
            if matches!(self.stream, Stream::Tls(_)) {
                // Over TLS the client sends the password itself.
                let ok = answer == [password.as_bytes(), &[0]].concat();
                if ok {
                    self.auth.cached.lock().unwrap().insert(user.clone());
                    self.auth.full.fetch_add(1, Ordering::Relaxed);
                }
                return if ok {
                    self.ok()
                } else {
                    self.err(
                        1045,
                        "28000",
                        &format!(
                            "Access denied for user '{user}'@'127.0.0.1' (using password: YES)"
                        ),
                    )
                };
            }
            if answer == [0x02] {
                let mut key = vec![0x01];
                key.extend_from_slice(&std::fs::read(self.auth.dir.path().join("public.pem"))?);
                self.write(&key)?;
                answer = self.read()?;
            }
            let clear = self
                .auth
                .decrypt(&answer)
                .map(|p| xor(&p, &self.nonce.repeat(32)));
            let mut wanted = password.as_bytes().to_vec();
            wanted.push(0);
            if clear.as_deref() == Some(wanted.as_slice()) {
                self.auth.cached.lock().unwrap().insert(user.clone());
                self.auth.full.fetch_add(1, Ordering::Relaxed);
                true
            } else {
                false
            }
        };
        if ok {
            self.ok()
        } else {
            self.err(
                1045,
                "28000",
                &format!("Access denied for user '{user}'@'127.0.0.1' (using password: YES)"),
            )
        }
    }

    fn parse_error(&mut self, near: &str) -> std::io::Result<()> {
        self.err(
            1064,
            "42000",
            &format!("You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use near '{near}' at line 1"),
        )
    }

    fn binlog_files(&self) -> Vec<(String, u64)> {
        let n = self.spec.binlogs.len();
        self.spec
            .binlogs
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let size = std::fs::metadata(p).unwrap().len();
                let size = match self.spec.written {
                    Some(w) if i + 1 == n => w.min(size),
                    _ => size,
                };
                (p.file_name().unwrap().to_string_lossy().into_owned(), size)
            })
            .collect()
    }

    /// A file's bytes as far as the server has written them.
    fn file_bytes(&self, index: usize) -> std::io::Result<Vec<u8>> {
        let mut data = std::fs::read(&self.spec.binlogs[index])?;
        if index + 1 == self.spec.binlogs.len() {
            if let Some(w) = self.spec.written {
                data.truncate(w as usize);
            }
        }
        Ok(data)
    }

    fn query(&mut self, sql: &str) -> std::io::Result<()> {
        let upper = sql.to_ascii_uppercase();
        let release = self.spec.release();
        let at_least = |v: (u32, u32, u32)| release >= v;
        if let Some(rest) = upper.strip_prefix("SET ") {
            // `SET @a = 1` (user variables), `SET SESSION ...`: remembered or accepted.
            if rest.trim_start().starts_with('@') && !rest.trim_start().starts_with("@@") {
                if let Some((name, value)) = sql[4..].split_once('=') {
                    let name = name.trim().trim_start_matches('@').to_ascii_lowercase();
                    let value = value.trim().trim_matches('\'').to_string();
                    self.user_vars.insert(name, value);
                }
            }
            return self.ok();
        }
        match upper.as_str() {
            "SELECT @@MAX_ALLOWED_PACKET,@@WAIT_TIMEOUT" => self.result_set(
                &[Col("@@max_allowed_packet", 8), Col("@@wait_timeout", 8)],
                &[vec![Some("67108864".into()), Some("28800".into())]],
            ),
            // A snapshot's transaction (no tables are served, so there is nothing to read).
            "START TRANSACTION WITH CONSISTENT SNAPSHOT" | "COMMIT" | "ROLLBACK" => self.ok(),
            "SELECT VERSION()" => {
                let v = self.spec.version.clone();
                self.result_set(&[Col("VERSION()", 253)], &[vec![Some(v)]])
            }
            "SELECT @@SERVER_ID" => {
                let id = self.spec.server_id.to_string();
                self.result_set(&[Col("@@server_id", 8)], &[vec![Some(id)]])
            }
            "SHOW BINARY LOG STATUS" if at_least((8, 2, 0)) => self.binlog_status(),
            "SHOW MASTER STATUS" if !at_least((8, 4, 0)) => self.binlog_status(),
            "SHOW MASTER STATUS" => self.parse_error("MASTER STATUS"),
            "SHOW BINARY LOG STATUS" => self.parse_error("BINARY LOG STATUS"),
            "SHOW BINARY LOGS" => {
                let rows: Vec<Vec<Option<String>>> = self
                    .binlog_files()
                    .into_iter()
                    .map(|(f, size)| vec![Some(f), Some(size.to_string()), Some("No".into())])
                    .collect();
                self.result_set(
                    &[Col("Log_name", 253), Col("File_size", 8), Col("Encrypted", 253)],
                    &rows,
                )
            }
            "SHOW REPLICAS" if at_least((8, 0, 22)) => self.result_set(
                &[
                    Col("Server_Id", 8),
                    Col("Host", 253),
                    Col("Port", 8),
                    Col("Source_Id", 8),
                    Col("Replica_UUID", 253),
                ],
                &[],
            ),
            "SHOW SLAVE HOSTS" if !at_least((8, 4, 0)) => self.result_set(
                &[Col("Server_id", 8), Col("Host", 253), Col("Port", 8), Col("Master_id", 8)],
                &[],
            ),
            "SHOW SLAVE HOSTS" => self.parse_error("SLAVE HOSTS"),
            "SHOW GRANTS" => self.result_set(
                &[Col("Grants for binlake@%", 253)],
                &[
                    vec![Some("GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `binlake`@`%`".into())],
                    vec![Some("GRANT CREATE, INSERT, DELETE ON `binlake`.* TO `binlake`@`%`".into())],
                ],
            ),
            _ if upper.starts_with("SELECT @@GLOBAL.") => {
                let name = upper["SELECT @@GLOBAL.".len()..].to_ascii_lowercase();
                let extra = self
                    .spec
                    .variables
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone());
                let value = extra.as_deref().or(match name.as_str() {
                    "log_bin" => Some("1"),
                    "binlog_format" => Some("ROW"),
                    "binlog_row_image" => Some("FULL"),
                    "binlog_row_metadata" => Some("FULL"),
                    "server_id" => Some("1"),
                    "gtid_mode" => Some("ON"),
                    "binlog_expire_logs_seconds" => Some("2592000"),
                    "binlog_order_commits" => Some("1"),
                    _ => None,
                });
                match value {
                    Some(v) => self.result_set(
                        &[Col("@@global", 253)],
                        &[vec![Some(v.to_string())]],
                    ),
                    None => self.err(
                        1193,
                        "HY000",
                        &format!("Unknown system variable '{name}'"),
                    ),
                }
            }
            // RDS's stored procedure (RDS User Guide, "mysql.rds_show_configuration"): name,
            // value, description.
            "CALL MYSQL.RDS_SHOW_CONFIGURATION" if self.spec.rds_configuration.is_some() => {
                let rows: Vec<Vec<Option<String>>> = self
                    .spec
                    .rds_configuration
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(name, value)| vec![Some(name), value, Some(String::new())])
                    .collect();
                self.procedure_result(
                    &[Col("name", 253), Col("value", 253), Col("description", 253)],
                    &rows,
                )
            }
            _ if upper.starts_with("SELECT TABLE_SCHEMA, TABLE_NAME FROM INFORMATION_SCHEMA.TABLES") => {
                self.result_set(&[Col("TABLE_SCHEMA", 253), Col("TABLE_NAME", 253)], &[])
            }
            _ if upper.starts_with("SHOW SESSION STATUS") => {
                let rows = match &self.stream {
                    Stream::Tls(s) => {
                        let version = match s.conn.protocol_version() {
                            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                            _ => "TLS",
                        };
                        let cipher = s
                            .conn
                            .negotiated_cipher_suite()
                            .map(|c| format!("{:?}", c.suite()))
                            .unwrap_or_default();
                        vec![
                            vec![Some("Ssl_cipher".into()), Some(cipher)],
                            vec![Some("Ssl_version".into()), Some(version.into())],
                        ]
                    }
                    _ => Vec::new(),
                };
                self.result_set(&[Col("Variable_name", 253), Col("Value", 253)], &rows)
            }
            _ => {
                let near: String = sql.chars().take(40).collect();
                self.parse_error(&near)
            }
        }
    }

    fn binlog_status(&mut self) -> std::io::Result<()> {
        let (file, size) = self.binlog_files().pop().unwrap_or_default();
        self.result_set(
            &[
                Col("File", 253),
                Col("Position", 8),
                Col("Binlog_Do_DB", 253),
                Col("Binlog_Ignore_DB", 253),
                Col("Executed_Gtid_Set", 253),
            ],
            &[vec![
                Some(file),
                Some(size.to_string()),
                Some(String::new()),
                Some(String::new()),
                Some(String::new()),
            ]],
        )
    }

    /// COM_BINLOG_DUMP: offset u32, flags u16, server id u32, file name.
    fn binlog_dump(&mut self, body: &[u8]) -> std::io::Result<()> {
        let start = u32::from_le_bytes(body[0..4].try_into().unwrap()) as u64;
        let name = String::from_utf8_lossy(&body[10..]).into_owned();
        self.send_binlog(&name, start, &[])
    }

    /// COM_BINLOG_DUMP_GTID: flags u16, server id u32, file name (u32 length), offset u64, and
    /// the replica's executed set (u32 size; u64 count of SIDs; per SID its 16-byte UUID, a u64
    /// count of intervals and each [start, end) as two u64). The sender skips every transaction
    /// whose GTID is in the set (`Binlog_sender::skip_event`, `sql/rpl_binlog_sender.cc`).
    fn binlog_dump_gtid(&mut self, body: &[u8]) -> std::io::Result<()> {
        let u32_at = |at: usize| u32::from_le_bytes(body[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap());
        let name_len = u32_at(6) as usize;
        let name = String::from_utf8_lossy(&body[10..10 + name_len]).into_owned();
        let mut at = 10 + name_len;
        let start = u64_at(at);
        at += 8 + 4;
        let sids = (u64_at(at) & 0x00ff_ffff_ffff_ffff) as usize;
        at += 8;
        let mut executed = Vec::new();
        for _ in 0..sids {
            let uuid: [u8; 16] = body[at..at + 16].try_into().unwrap();
            at += 16;
            let n = u64_at(at) as usize;
            at += 8;
            for _ in 0..n {
                executed.push((uuid, u64_at(at), u64_at(at + 8)));
                at += 16;
            }
        }
        let name = if name.is_empty() {
            self.binlog_files()
                .first()
                .map(|(f, _)| f.clone())
                .unwrap_or_default()
        } else {
            name
        };
        self.send_binlog(&name, start, &executed)
    }

    /// Sends the binlog from `name` at `start`, skipping the transactions whose GTID is in
    /// `executed`, then heartbeats until the replica hangs up.
    fn send_binlog(
        &mut self,
        name: &str,
        start: u64,
        executed: &[([u8; 16], u64, u64)],
    ) -> std::io::Result<()> {
        const GTID_EVENT: u8 = 33;
        const ANONYMOUS_GTID_EVENT: u8 = 34;
        let files = self.spec.binlogs.clone();
        let Some(first) = files
            .iter()
            .position(|p| p.file_name().unwrap().to_string_lossy() == name)
        else {
            return self.err(
                1236,
                "HY000",
                "Could not find first log file name in binary log index file",
            );
        };
        let period_ns: u64 = ["source_heartbeat_period", "master_heartbeat_period"]
            .iter()
            .find_map(|v| self.user_vars.get(*v).and_then(|x| x.parse().ok()))
            .unwrap_or(0);
        let mut last = (name.to_string(), 4u64, false);
        for (i, path) in files.iter().enumerate().skip(first) {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let data = self.file_bytes(i)?;
            let from = if i == first { start.max(4) } else { 4 };
            // The FORMAT_DESCRIPTION event right after the magic bytes says whether events
            // carry a CRC32 (the byte before the checksum: 1 = CRC32).
            let fde_len = u32::from_le_bytes(data[13..17].try_into().unwrap()) as usize;
            let fde = data[4..4 + fde_len].to_vec();
            let checksum = fde.len() >= 5 && fde[fde.len() - 5] == 1;
            self.send_artificial(ROTATE_EVENT, &file, from, checksum)?;
            self.send_event(&fde)?;
            let mut at = if from <= 4 {
                4 + fde_len
            } else {
                from as usize
            };
            let mut skipping = false;
            while at + 19 <= data.len() {
                let size = u32::from_le_bytes(data[at + 9..at + 13].try_into().unwrap()) as usize;
                if size < 19 || at + size > data.len() {
                    break;
                }
                let kind = data[at + 4];
                if let (GTID_EVENT | ANONYMOUS_GTID_EVENT, Some(pace)) = (kind, self.spec.pace) {
                    // Idle until the next commit: heartbeats at the replica's period, as the
                    // sender sends them while it waits (`wait_with_heartbeat`).
                    let period = Duration::from_nanos(period_ns.max(100_000_000));
                    let until = Instant::now() + pace;
                    while Instant::now() < until {
                        std::thread::sleep(period.min(until - Instant::now()));
                        self.send_artificial(HEARTBEAT_EVENT, &file, at as u64, checksum)?;
                    }
                }
                if kind == GTID_EVENT {
                    let sid: [u8; 16] = data[at + 20..at + 36].try_into().unwrap();
                    let gno = u64::from_le_bytes(data[at + 36..at + 44].try_into().unwrap());
                    skipping = executed
                        .iter()
                        .any(|(u, s, e)| *u == sid && *s <= gno && gno < *e);
                } else if kind == ANONYMOUS_GTID_EVENT {
                    skipping = false;
                }
                if kind != FORMAT_DESCRIPTION_EVENT && !skipping {
                    let event = data[at..at + size].to_vec();
                    self.send_event(&event)?;
                }
                at += size;
            }
            last = (file, at as u64, checksum);
        }
        // Idle: heartbeats at the replica's period (they also carry the position past any
        // skipped transactions) until it hangs up.
        let period = Duration::from_nanos(period_ns.max(100_000_000));
        let started = Instant::now();
        while !self.stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(600) {
            let (file, pos, checksum) = last.clone();
            if self
                .send_artificial(HEARTBEAT_EVENT, &file, pos, checksum)
                .is_err()
            {
                return Ok(());
            }
            std::thread::sleep(period);
        }
        Ok(())
    }

    fn send_event(&mut self, event: &[u8]) -> std::io::Result<()> {
        let mut p = Vec::with_capacity(event.len() + 1);
        p.push(0x00);
        p.extend_from_slice(event);
        self.write(&p)
    }

    /// An event the sender makes up: the ROTATE naming the file and offset it starts from
    /// (log_pos 0, LOG_EVENT_ARTIFICIAL_F), or a HEARTBEAT at the end of what it has sent.
    fn send_artificial(
        &mut self,
        kind: u8,
        file: &str,
        pos: u64,
        checksum: bool,
    ) -> std::io::Result<()> {
        let mut body = Vec::new();
        if kind == ROTATE_EVENT {
            body.extend_from_slice(&pos.to_le_bytes());
        }
        body.extend_from_slice(file.as_bytes());
        let size = 19 + body.len() + if checksum { 4 } else { 0 };
        let mut event = Vec::with_capacity(size);
        event.extend_from_slice(&0u32.to_le_bytes());
        event.push(kind);
        event.extend_from_slice(&self.spec.server_id.to_le_bytes());
        event.extend_from_slice(&(size as u32).to_le_bytes());
        let log_pos = if kind == ROTATE_EVENT { 0 } else { pos as u32 };
        event.extend_from_slice(&log_pos.to_le_bytes());
        event.extend_from_slice(&LOG_EVENT_ARTIFICIAL_F.to_le_bytes());
        event.extend_from_slice(&body);
        if checksum {
            let crc = crc32fast::hash(&event);
            event.extend_from_slice(&crc.to_le_bytes());
        }
        self.send_event(&event)
    }
}
