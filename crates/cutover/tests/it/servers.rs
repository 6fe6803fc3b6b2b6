//! Servers of a test's own, for faults that stop, fill or cluster a server: a Postgres cluster
//! (initdb into a temporary directory, on a free port) with a tablespace on a size-limited
//! tmpfs, and RabbitMQ nodes (on free ports, clustered when asked). Never the machine's shared
//! services. Each is stopped and its files removed when dropped.
//!
//! Both need what a CI machine has: the Postgres and RabbitMQ server packages (`.ci/services.sh`
//! installs them) and, for the tmpfs, root (`mount`); Postgres refuses to run as root, so as
//! root its processes run as the `postgres` user.

use sqlx::Connection;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The `postgres` user's uid and gid, from `id`.
fn postgres_user() -> (u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, "postgres"]).output().expect("running id");
        assert!(out.status.success(), "no `postgres` user to run a private Postgres as");
        String::from_utf8_lossy(&out.stdout).trim().parse::<u32>().unwrap()
    };
    (id("-u"), id("-g"))
}

/// The directory of Postgres' server programs (`initdb`, `postgres`): the newest installed
/// under /usr/lib/postgresql, else whatever is on PATH.
fn postgres_bin(program: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| dir.filter_map(|e| e.ok().map(|e| e.path().join("bin").join(program))).collect())
        .unwrap_or_default();
    versions.retain(|p| p.exists());
    versions.sort();
    versions.pop().unwrap_or_else(|| PathBuf::from(program))
}

fn scratch_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cutover-{kind}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Postgres cluster of the test's own, listening on 127.0.0.1 at `port`, trusting every local
/// connection (user `postgres`).
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    server: Child,
    mounts: Vec<PathBuf>,
    owner: Option<(u32, u32)>,
}

impl PrivatePostgres {
    pub async fn start() -> PrivatePostgres {
        let dir = scratch_dir("pg");
        let owner = is_root().then(postgres_user);
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).unwrap();
        }
        let data = dir.join("data");
        let mut initdb = Command::new(postgres_bin("initdb"));
        initdb.args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "-D"]).arg(&data);
        let out = as_owner(&mut initdb, owner).output().expect("running initdb");
        assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        let port = free_port();
        let log = std::fs::File::create(dir.join("postgres.log")).unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.join("postgres.log"), Some(uid), Some(gid)).unwrap();
        }
        let mut server = Command::new(postgres_bin("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "shared_buffers=32MB"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        let server = as_owner(&mut server, owner).spawn().expect("starting postgres");
        let pg = PrivatePostgres { port, dir, server, mounts: Vec::new(), owner };
        let started = Instant::now();
        while sqlx::PgConnection::connect_with(&pg.options("postgres")).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the private Postgres did not answer: {}",
                std::fs::read_to_string(pg.dir.join("postgres.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pg
    }

    pub fn options(&self, database: &str) -> sqlx::postgres::PgConnectOptions {
        use sqlx::ConnectOptions;
        sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username("postgres")
            .database(database)
            .disable_statement_logging()
    }

    pub async fn execute(&self, sql: &str) {
        let mut conn = sqlx::PgConnection::connect_with(&self.options("postgres")).await.unwrap();
        sqlx::query(sql).execute(&mut conn).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Mounts a tmpfs of `megabytes` and makes a tablespace `name` on it, the default for every
    /// table and index created from now on (the migrations'); answers the mount point, which
    /// `fill` fills. Needs root.
    pub async fn small_tablespace(&mut self, name: &str, megabytes: u32) -> PathBuf {
        assert!(is_root(), "a tmpfs tablespace needs root (mount); the fault tests run as root in CI");
        let mount = self.dir.join(format!("{name}-tmpfs"));
        std::fs::create_dir_all(&mount).unwrap();
        let mut options = format!("size={megabytes}m,mode=0755");
        if let Some((uid, gid)) = self.owner {
            options.push_str(&format!(",uid={uid},gid={gid}"));
        }
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &options, "tmpfs"]).arg(&mount).output().unwrap();
        assert!(out.status.success(), "mounting a tmpfs failed: {}", String::from_utf8_lossy(&out.stderr));
        self.mounts.push(mount.clone());
        let location = mount.join("tablespace");
        std::fs::create_dir(&location).unwrap();
        if let Some((uid, gid)) = self.owner {
            std::os::unix::fs::chown(&location, Some(uid), Some(gid)).unwrap();
        }
        self.execute(&format!("CREATE TABLESPACE {name} LOCATION '{}'", location.display())).await;
        self.execute(&format!("ALTER SYSTEM SET default_tablespace = '{name}'")).await;
        self.execute("SELECT pg_reload_conf()").await;
        mount
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // SIGQUIT: an immediate shutdown, which takes the backends with the postmaster
        let _ = Command::new("kill").args(["-QUIT", &self.server.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.server.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.server.kill();
        let _ = self.server.wait();
        for mount in &self.mounts {
            let _ = Command::new("umount").arg("-l").arg(mount).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn as_owner(command: &mut Command, owner: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = owner {
        command.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    command
}

/// Fills the filesystem at `mount` to the last byte with a file of its own; answers the file,
/// whose removal frees the space.
pub fn fill(mount: &Path) -> PathBuf {
    use std::io::Write;
    let path = mount.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 1 << 20];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", mount.display()),
        }
    }
    path
}
